package slackfake_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
)

// lenient is a fake that records broken limits without failing the test,
// with the slack-go client that talks to it.
func lenient(t *testing.T) (*slackfake.Server, *slack.Client) {
	t.Helper()
	s := slackfake.New(t, slackfake.Options{
		Channels:    []slackfake.Channel{{ID: "C1", Name: "soc"}},
		Users:       []slackfake.User{{ID: "U1", Name: "alice"}},
		OnViolation: func(string) {}, // these tests break limits on purpose
	})
	return s, slack.New(s.Options().BotToken, slack.OptionAPIURL(s.APIURL()))
}

func modal(els ...slack.BlockElement) slack.ModalViewRequest {
	v := slack.ModalViewRequest{Type: slack.VTModal, Title: slack.NewTextBlockObject(slack.PlainTextType, "Ask", false, false)}
	for i, el := range els {
		id := string(rune('a' + i))
		v.Blocks.BlockSet = append(v.Blocks.BlockSet, slack.NewInputBlock(id, slack.NewTextBlockObject(slack.PlainTextType, "Field", false, false), nil, el))
	}
	return v
}

func option(value, text string) *slack.OptionBlockObject {
	return slack.NewOptionBlockObject(value, slack.NewTextBlockObject(slack.PlainTextType, text, false, false), nil)
}

// TestSelectsAsSlack: a static select's initial_option must be one of its
// options, and every option needs a value of 1 to 150 characters and a text
// of 1 to 75, in a modal as in a message; Slack refuses the view
// (invalid_arguments) or the message (invalid_blocks) otherwise.
func TestSelectsAsSlack(t *testing.T) {
	t.Parallel()
	s, api := lenient(t)
	ctx := t.Context()
	sel := func(initial *slack.OptionBlockObject, opts ...*slack.OptionBlockObject) *slack.SelectBlockElement {
		el := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, nil, "pick", opts...)
		el.InitialOption = initial
		return el
	}
	low, high := option("low", "Low"), option("high", "High")

	_, err := api.OpenViewContext(ctx, s.NewTrigger(), modal(sel(option("high", "High"), low, high)))
	require.NoError(t, err)
	require.Empty(t, s.Violations())

	for name, c := range map[string]struct {
		el   *slack.SelectBlockElement
		want string
	}{
		"initial not an option":   {sel(option("urgent", "Urgent"), low, high), `initial_option "urgent" is not one of the options`},
		"initial with other text": {sel(option("high", "Highest"), low, high), `initial_option "high" is not one of the options`},
		"empty value":             {sel(nil, low, option("", "None")), "option value is 0 characters, Slack allows 1-150"},
		"long value":              {sel(nil, low, option(strings.Repeat("v", 151), "Long")), "option value is 151 characters, Slack allows 1-150"},
		"long text":               {sel(nil, low, option("x", strings.Repeat("t", 76))), "text is 76 characters, Slack allows 75"},
	} {
		before := len(s.Violations())
		_, err := api.OpenViewContext(ctx, s.NewTrigger(), modal(c.el))
		require.ErrorContains(t, err, "invalid_arguments", name)
		require.Contains(t, strings.Join(s.Violations()[before:], "\n"), c.want, name)

		before = len(s.Violations())
		_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("pick", false),
			slack.MsgOptionBlocks(slack.NewActionBlock("act", c.el)))
		require.ErrorContains(t, err, "invalid_blocks", name)
		require.Contains(t, strings.Join(s.Violations()[before:], "\n"), c.want, name)

		before = len(s.Violations())
		_, _, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("pick", false),
			slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "Pick", false, false), nil, slack.NewAccessory(c.el))))
		require.ErrorContains(t, err, "invalid_blocks", name)
		require.Contains(t, strings.Join(s.Violations()[before:], "\n"), c.want, name)
	}
}

// TestTextInputAsSlack: a plain-text input's initial_value may not be
// longer than its max_length; Slack refuses the view.
func TestTextInputAsSlack(t *testing.T) {
	t.Parallel()
	s, api := lenient(t)
	ctx := t.Context()
	input := func(initial string, maxLen int) *slack.PlainTextInputBlockElement {
		el := slack.NewPlainTextInputBlockElement(nil, "note")
		el.InitialValue, el.MaxLength = initial, maxLen
		return el
	}
	_, err := api.OpenViewContext(ctx, s.NewTrigger(), modal(input("0123456789", 10), input("no max_length", 0)))
	require.NoError(t, err)
	require.Empty(t, s.Violations())

	_, err = api.OpenViewContext(ctx, s.NewTrigger(), modal(input("0123456789x", 10)))
	require.ErrorContains(t, err, "invalid_arguments")
	require.Contains(t, strings.Join(s.Violations(), "\n"), "initial_value is 11 characters, longer than max_length 10")
}

// TestLongTextAsSlack: Slack truncates a message's text beyond 40,000
// characters and posts it with a message_truncated warning, rather than
// refusing it; 4,000 characters is advice, not a limit, with or without
// blocks.
func TestLongTextAsSlack(t *testing.T) {
	t.Parallel()
	s, api := lenient(t)
	ctx := t.Context()
	block := slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*card*", false, false), nil, nil))

	advised := strings.Repeat("é", 4001)
	_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText(advised, false), block)
	require.NoError(t, err)
	m, _ := s.Message("C1", ts)
	require.Equal(t, advised, m.Text)
	require.Empty(t, s.Violations())

	long := strings.Repeat("é", 40000)
	_, ts, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText(long+"cut", false))
	require.NoError(t, err, "Slack posts it, truncated")
	m, _ = s.Message("C1", ts)
	require.Equal(t, long, m.Text)
	require.Contains(t, strings.Join(s.Violations(), "\n"), "chat.postMessage: text is 40003 characters, Slack truncates it to 40000")

	_, _, _, err = api.UpdateMessageContext(ctx, "C1", ts, slack.MsgOptionText(long+"again", false), block)
	require.NoError(t, err)
	m, _ = s.Message("C1", ts)
	require.Equal(t, long, m.Text)

	resp, err := http.PostForm(s.APIURL()+"chat.postMessage", url.Values{"token": {s.Options().BotToken}, "channel": {"C1"}, "text": {long + "!"}})
	require.NoError(t, err)
	defer resp.Body.Close()
	var got struct {
		OK       bool   `json:"ok"`
		Warning  string `json:"warning"`
		Metadata struct {
			Warnings []string `json:"warnings"`
		} `json:"response_metadata"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.True(t, got.OK)
	require.Equal(t, "message_truncated", got.Warning)
	require.Equal(t, []string{"message_truncated"}, got.Metadata.Warnings)
}

// TestRichTextAsSlack: rich text text elements are shown as written, so a
// "<@U1>" or "<!channel>" in one pings no one, while a user element
// mentions its user; a broadcast or user group element pings, and an empty
// text element, an unknown element or a section inside a quote is refused.
func TestRichTextAsSlack(t *testing.T) {
	t.Parallel()
	s, api := lenient(t)
	ctx := t.Context()
	quote := func(els ...slack.RichTextSectionElement) slack.MsgOption {
		return slack.MsgOptionBlocks(slack.NewRichTextBlock("", &slack.RichTextQuote{Type: slack.RTEQuote, Elements: els}))
	}
	_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("relay", false),
		quote(slack.NewRichTextSectionTextElement("*Eve* wrote: <@U1> <!channel>", nil)))
	require.NoError(t, err)
	m, _ := s.Message("C1", ts)
	require.Empty(t, m.Notified, "text elements mention no one")
	require.Empty(t, s.Violations())

	_, ts, err = api.PostMessageContext(ctx, "C1", slack.MsgOptionText("relay", false),
		quote(slack.NewRichTextSectionUserElement("U1", nil)))
	require.NoError(t, err)
	m, _ = s.Message("C1", ts)
	require.Equal(t, []string{"U1"}, m.Notified)

	for name, opt := range map[string]slack.MsgOption{
		"an empty text": quote(slack.NewRichTextSectionTextElement("", nil)),
		"a broadcast":   quote(slack.NewRichTextSectionBroadcastElement("channel")),
		"no elements":   quote(),
		"a user group":  quote(slack.NewRichTextSectionUserGroupElement("S0SOC")),
		"a nested section": slack.MsgOptionBlocks(slack.NewRichTextBlock("", &slack.RichTextUnknown{Type: "rich_text_quote",
			Raw: `{"type":"rich_text_quote","elements":[{"type":"rich_text_section","elements":[{"type":"text","text":"x"}]}]}`})),
		"a broadcast in a list": slack.MsgOptionBlocks(slack.NewRichTextBlock("", &slack.RichTextUnknown{Type: "rich_text_list",
			Raw: `{"type":"rich_text_list","style":"bullet","elements":[{"type":"rich_text_section","elements":[{"type":"broadcast","range":"here"}]}]}`})),
		"unknown kind": slack.MsgOptionBlocks(slack.NewRichTextBlock("", &slack.RichTextUnknown{Type: "rich_text_poem", Raw: `{"type":"rich_text_poem","elements":[{"type":"text","text":"roses"}]}`})),
	} {
		before := len(s.Violations())
		_, _, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("relay", false), opt)
		require.Error(t, err, name)
		require.Greater(t, len(s.Violations()), before, name)
	}
}
