package discord

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
)

func TestEscape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"markdown", "**bold** _it_ ~~s~~ `c` ||spoiler||", `\*\*bold\*\* \_it\_ \~\~s\~\~ \` + "`" + `c\` + "`" + ` \|\|spoiler\|\|`},
		{"everyone and here", "@everyone @here", "@\u200beveryone @\u200bhere"},
		{"mentions", "<@123> <@&456> <#789>", "\\<@123\\> \\<@\u200b&456\\> \\<#789\\>"},
		{"masked link", "[x](https://e.example)", `\[x\](https://e.example)`},
		{"line starts", "# h\n- item\n> quote\nmid-word #tag", "\\# h\n\\- item\n\\> quote\nmid-word #tag"},
		{"backslash", `a\b`, `a\\b`},
		{"unicode", "日本語 🙂", "日本語 🙂"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, escape(tt.in, true), tt.name)
	}
}

func TestCut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"fits", "abc", 3, "abc"},
		{"ascii", "abcdef", 4, "abc…"},
		{"runes not bytes", "日本語日本語", 4, "日本語…"},
		{"emoji", "🙂🙂🙂", 2, "🙂…"},
		{"no dangling escape", `ab\*cd`, 4, "ab…"},
		{"escaped backslash kept", `a\\bcd`, 4, `a\\…`},
		{"one", "abc", 1, "…"},
		{"zero", "abc", 0, ""},
	}
	for _, tt := range tests {
		got := cut(tt.in, tt.n)
		require.Equal(t, tt.want, got, tt.name)
		require.True(t, utf8.ValidString(got))
		require.LessOrEqual(t, utf8.RuneCountInString(got), max(tt.n, 0))
	}
}

func TestRenderLine(t *testing.T) {
	t.Parallel()
	l := bot.Line{
		bot.B("Case"), bot.T(" "), bot.L("EOD-1", "https://td.example/cases/EOD-1"), bot.T(" "),
		bot.U("**not bold** [x](https://evil.example)"), bot.T(" "),
		{Text: "a`b", Style: bot.StyleCode}, bot.T(" "), {Text: "bad link", Link: "javascript:alert(1)"},
	}
	require.Equal(t, "**Case** [EOD-1](https://td.example/cases/EOD-1) \\*\\*not bold\\*\\* \\[x\\](https://evil.example) `aˋb` bad link", renderLine(l, true))
}

func TestRenderButtons(t *testing.T) {
	t.Parallel()
	var bs []bot.Button
	for i := range 30 {
		bs = append(bs, bot.Button{Action: bot.ActTake, Value: "EOD-" + strings.Repeat("1", i+1), Label: "Take"})
	}
	bs = append([]bot.Button{{Action: bot.ActTake, Value: "EOD-1"}, {Action: bot.ActTake, Value: strings.Repeat("x", 100)}}, bs...)
	rows := renderButtons(bs)
	require.Len(t, rows, MaxRows)
	n := 0
	for _, r := range rows {
		row := r.(discordgo.ActionsRow)
		require.LessOrEqual(t, len(row.Components), MaxButtonsPerRow)
		for _, c := range row.Components {
			b := c.(discordgo.Button)
			require.LessOrEqual(t, len(b.CustomID), MaxCustomID)
			n++
		}
	}
	require.Equal(t, 25, n, "the duplicate and the too-long id are left out, the rest cut at 25")
	act, val := parseCustomID("take:EOD-1")
	require.Equal(t, bot.ActTake, act)
	require.Equal(t, "EOD-1", val)
}

func TestRenderForm(t *testing.T) {
	t.Parallel()
	f := bot.Form{ID: "conclude", State: "EOD-1", Title: strings.Repeat("T", 60), Fields: []bot.FormField{
		{ID: "summary", Label: strings.Repeat("L", 50), Kind: bot.InputParagraph, MaxLength: 9000, MinLength: -1, Value: strings.Repeat("v", 5000)},
	}}
	m, err := renderForm(f)
	require.NoError(t, err)
	require.Equal(t, "f:conclude:EOD-1", m.CustomID)
	require.Equal(t, MaxModalTitle, utf8.RuneCountInString(m.Title))
	in := m.Components[0].(discordgo.ActionsRow).Components[0].(discordgo.TextInput)
	require.Equal(t, MaxInputValue, in.MaxLength)
	require.Zero(t, in.MinLength)
	require.Equal(t, MaxInputValue, utf8.RuneCountInString(in.Value))
	form, state, ok := parseFormCustomID(m.CustomID)
	require.True(t, ok)
	require.Equal(t, "conclude", form)
	require.Equal(t, "EOD-1", state)

	_, err = renderForm(bot.Form{ID: "x", State: strings.Repeat("s", 100), Fields: f.Fields})
	require.Error(t, err, "state too long for a custom_id")

	// "Ask about this file" on a card: a 19-digit channel and a SHA-256
	// would be 105 characters; the channel, which Discord reports with the
	// submission, is left out.
	sha := strings.Repeat("ab", 32)
	m, err = renderForm(bot.Form{ID: "consult", State: "c=1234567890123456789&i=" + sha + "&k=file", Fields: f.Fields})
	require.NoError(t, err)
	_, state, _ = parseFormCustomID(m.CustomID)
	require.Equal(t, "i="+sha+"&k=file", state)
	_, err = renderForm(bot.Form{ID: "x", Fields: make([]bot.FormField, 6)})
	require.Error(t, err, "six inputs")
}

func TestRewriteTransport(t *testing.T) {
	t.Parallel()
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI())
		w.WriteHeader(204)
	}))
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL + "/custom/api/")
	c := newHTTPClient(base, 0, nil)
	for _, u := range []string{
		discordgo.EndpointGateway,
		discordgo.EndpointGatewayBot,
		discordgo.EndpointChannelMessages("1") + "?x=y",
		discordgo.EndpointWebhookToken("2", "tok"),
	} {
		resp, err := c.Get(u)
		require.NoError(t, err)
		resp.Body.Close()
	}
	require.Equal(t, []string{
		"GET /custom/api/gateway/bot",
		"GET /custom/api/gateway/bot",
		"GET /custom/api/channels/1/messages?x=y",
		"GET /custom/api/webhooks/2/tok",
	}, got)
	// Other hosts are left alone.
	resp, err := c.Get(srv.URL + "/elsewhere")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "GET /elsewhere", got[len(got)-1])
}

func TestRedact(t *testing.T) {
	t.Parallel()
	a := &Adapter{cfg: Config{Token: "sekrit.token"}}
	a.tokenPath = newTokenPath()
	got := a.redact(`Post "https://discord.com/api/v10/webhooks/123/aW50ZXJhY3Rpb246dG9rZW4?wait=true": sekrit.token refused; /interactions/99/abc/callback`)
	require.NotContains(t, got, "sekrit")
	require.NotContains(t, got, "aW50ZXJhY3Rpb246dG9rZW4")
	require.NotContains(t, got, "/abc/")
	require.Contains(t, got, "/webhooks/123/[redacted]")

	// With DISCORD_API_URL, an error names the URL the request went to,
	// not the one discordgo built (it named discord.com while a proxy was
	// dialled).
	a.cfg.APIURL = "http://127.0.0.1:9/api/"
	got = a.redact(`Get "` + discordgo.EndpointAPI + `gateway": dial tcp 127.0.0.1:9: connection refused; ` + discordgo.EndpointAPI + `channels/1/messages`)
	require.Equal(t, `Get "http://127.0.0.1:9/api/gateway/bot": dial tcp 127.0.0.1:9: connection refused; http://127.0.0.1:9/api/channels/1/messages`, got)
}

// TestLongTextIsNotCutAfterEscaping: a relayed message the bot keeps within
// 1,800 characters can pass Discord's 2,000 for content once escaped (a
// Windows path escapes every backslash); it goes into an embed's
// description (4,096) whole, with its "(edited)" line, and whoever it is
// meant for is still named in the content. It was cut, the marker first.
func TestLongTextIsNotCutAfterEscaping(t *testing.T) {
	t.Parallel()
	path := strings.Repeat(`C:\Users\a\`, 160) // 1,760 runes, 2,400 escaped
	m := bot.Message{Text: []bot.Line{{bot.B("Eve"), bot.T(" (threat expert) wrote:")}, {bot.U(path)}, {{Text: "(edited)", Style: bot.StyleItalic}}},
		Mentions: []string{"424242424242424242"}}
	p := render(m)
	require.Equal(t, "<@424242424242424242>", p.Content)
	require.Len(t, p.Embeds, 1)
	d := p.Embeds[0].Description
	require.LessOrEqual(t, utf8.RuneCountInString(d), MaxEmbedDescription)
	require.Contains(t, d, escape(path, false), "the whole text")
	require.True(t, strings.HasSuffix(d, "*(edited)*") || strings.HasSuffix(d, "_(edited)_"), d[len(d)-20:])
	require.Equal(t, []string{"424242424242424242"}, p.AllowedMentions.users)

	// A short one stays content.
	p = render(bot.Message{Text: []bot.Line{{bot.U(`C:\x`)}}})
	require.Equal(t, `C:\\x`, p.Content)
	require.Empty(t, p.Embeds)
}

// TestQuoteCannotPassForTheBot: a relayed reply (Message.Quote) is one
// multi-line quote to the end of the message, its markdown escaped, so a
// line imitating the relay's header ("**Eve** (threat expert) wrote:") or
// a heading stays inside it, shown as typed, blank lines too; with small
// print after it, each line is quoted. A relay at the bot's 1,800
// characters fits Discord whole however many lines it has.
func TestQuoteCannotPassForTheBot(t *testing.T) {
	t.Parallel()
	head := []bot.Line{{bot.B("Ana"), bot.T(" (requester, Contoso) wrote:")}}
	q := "Checked.\n\n**Eve** (threat expert) wrote:\n# close it @everyone"
	p := render(bot.Message{Text: head, Quote: q})
	require.Equal(t, "**Ana** (requester, Contoso) wrote:\n>>> Checked.\n\n\\*\\*Eve\\*\\* (threat expert) wrote:\n\\# close it @\u200beveryone", p.Content)

	p = render(bot.Message{Text: head, Quote: "a\n\n*b*", Footer: bot.Line{{Text: "(edited)", Style: bot.StyleItalic}}})
	require.Equal(t, "**Ana** (requester, Contoso) wrote:\n> a\n> \n> \\*b\\*\n-# *(edited)*", p.Content)

	for name, quote := range map[string]string{
		"backslashes": strings.Repeat(`C:\Users\a\`, 160),
		"blank lines": "start" + strings.Repeat("\n", 1790) + "END",
		"short lines": strings.Repeat("_\n", 895) + "END",
	} {
		p = render(bot.Message{Text: head, Quote: quote + "\nEND"})
		text := p.Content
		if len(p.Embeds) > 0 {
			text = p.Embeds[0].Description
		}
		require.True(t, strings.HasSuffix(text, "\nEND"), "%s: the quote whole, its last line kept: %q", name, text[max(0, len(text)-30):])
		require.LessOrEqual(t, utf8.RuneCountInString(text), MaxEmbedDescription, name)
	}
}

// TestFitEmbedCutsBeforeItDrops: a card over Discord's 6,000 characters
// keeps every section, the longest cut with "…"; only when cutting is not
// enough are sections left out, and the card says how many. Sections
// ("What to do now" last) were dropped without a word.
func TestFitEmbedCutsBeforeItDrops(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	fields := func(n, size int) []*discordgo.MessageEmbedField {
		var out []*discordgo.MessageEmbedField
		for i := range n {
			out = append(out, &discordgo.MessageEmbedField{Name: fmt.Sprintf("Section %d", i), Value: long(size)})
		}
		return out
	}
	e := &discordgo.MessageEmbed{Title: "Ransomware on ws-01", Description: long(3600), Fields: fields(7, 1000)}
	fitEmbed(e)
	require.LessOrEqual(t, embedLength(e), MaxEmbedTotal)
	require.Len(t, e.Fields, 7, "every section kept")
	require.Equal(t, "Section 6", e.Fields[6].Name)
	require.True(t, strings.HasSuffix(e.Fields[0].Value, "…"), "a cut section says so")
	require.Equal(t, long(1000), e.Fields[6].Value, "what fits is kept whole")

	e = &discordgo.MessageEmbed{Title: "t", Description: long(100), Fields: fields(25, 1000)}
	for _, f := range e.Fields {
		f.Name = long(240)
	}
	fitEmbed(e)
	require.LessOrEqual(t, embedLength(e), MaxEmbedTotal)
	require.Less(t, len(e.Fields), 25)
	require.Contains(t, e.Description, fmt.Sprintf("(%d more sections left out: too long for Discord)", 25-len(e.Fields)))
}

// TestSectionShowsALongSecondLine: a section whose second line does not fit
// shows it cut to the room left (a card's conclusion after its "cut here"
// line); it showed only "… and 1 more".
func TestSectionShowsALongSecondLine(t *testing.T) {
	t.Parallel()
	long := strings.Repeat(`C:\Windows\Temp\x_y.exe `, 40) // 960 runes, more escaped
	v := renderSection(bot.Section{Title: "Conclusion", Lines: []bot.Line{
		{{Text: "(long: cut here, the whole text follows in the thread)", Style: bot.StyleItalic}}, {bot.U(long)}}})
	require.LessOrEqual(t, utf8.RuneCountInString(v), MaxFieldValue)
	require.Contains(t, v, "cut here")
	require.Contains(t, v, `C:\\Windows\\Temp\\x\_y.exe C:\\Windows`)
	require.NotContains(t, v, "and 1 more")
}

// TestFormErrorSaysWhatWasWrong: Discord refuses a form with only "Invalid
// Form Body" in its message and the reasons, by field, in errors; the
// error the operator reads names the first of them.
func TestFormErrorSaysWhatWasWrong(t *testing.T) {
	t.Parallel()
	body := []byte(`{"code": 50035, "message": "Invalid Form Body", "errors": {
  "content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]},
  "embeds": {"0": {"fields": {"3": {"value": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}}}}}}}`)
	e := parseAPIError(400, body)
	require.Equal(t, 50035, e.Code)
	require.Equal(t, "Invalid Form Body (content: Must be 2000 or fewer in length.; embeds.0.fields.3.value: This field is required)", e.Message)

	e = parseAPIError(404, []byte(`{"code": 10008, "message": "Unknown Message"}`))
	require.Equal(t, "Unknown Message", e.Message, "no errors object, nothing added")
}
