package slackfake_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
)

// TestResponseURLReplaceAndDelete: a response URL posts a new message
// unless told otherwise (ephemeral by default, in the channel with
// response_type in_channel); replace_original replaces the message the
// interaction came from, in the channel or ephemeral, and delete_original
// deletes it, as Slack documents.
func TestResponseURLReplaceAndDelete(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var violations []string
	s := slackfake.New(t, slackfake.Options{
		Channels: []slackfake.Channel{{ID: "C1", Name: "soc"}},
		Users:    []slackfake.User{{ID: "U1", Name: "alice"}},
		OnViolation: func(v string) {
			mu.Lock()
			defer mu.Unlock()
			violations = append(violations, v)
		},
	})
	api := slack.New(s.Options().BotToken, slack.OptionAPIURL(s.APIURL()))
	ctx := t.Context()
	button := slack.NewActionBlock("a", slack.NewButtonBlockElement("take", "1", slack.NewTextBlockObject(slack.PlainTextType, "Take", false, false)))
	_, ts, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("card", false), slack.MsgOptionBlocks(button))
	require.NoError(t, err)
	press := func() string {
		p, err := s.Press("C1", ts, "U1", "take")
		require.NoError(t, err)
		return p["response_url"].(string)
	}
	text := func(s string) slack.MsgOption { return slack.MsgOptionText(s, false) }

	// A new message, ephemeral by default: the card stays as it was.
	url := press()
	_, _, err = api.PostMessageContext(ctx, "", text("only you"), slack.MsgOptionResponseURL(url, ""))
	require.NoError(t, err)
	card, ok := s.Message("C1", ts)
	require.True(t, ok)
	require.Equal(t, "card", card.Text)
	require.Len(t, s.Responses(), 1)
	require.Equal(t, "ephemeral", s.Responses()[0].ResponseType)
	require.Equal(t, "U1", s.Responses()[0].User)
	require.Len(t, s.Messages("C1"), 1, "an ephemeral answer is not a message in the channel")

	// in_channel: a message everyone in the channel sees.
	_, _, err = api.PostMessageContext(ctx, "", text("for all"), slack.MsgOptionResponseURL(url, slack.ResponseTypeInChannel))
	require.NoError(t, err)
	msgs := s.Messages("C1")
	require.Len(t, msgs, 2)
	require.Equal(t, "for all", msgs[1].Text)
	require.False(t, msgs[1].Ephemeral)

	// replace_original: the card itself changes, nothing new is posted.
	_, _, err = api.PostMessageContext(ctx, "", text("taken by alice"), slack.MsgOptionReplaceOriginal(url))
	require.NoError(t, err)
	card, _ = s.Message("C1", ts)
	require.Equal(t, "taken by alice", card.Text)
	require.Equal(t, 1, card.Edits)
	require.Len(t, s.Responses(), 2)
	require.Len(t, s.Messages("C1"), 2)

	// delete_original: the card is gone.
	_, _, err = api.PostMessageContext(ctx, "", slack.MsgOptionDeleteOriginal(url))
	require.NoError(t, err)
	_, ok = s.Message("C1", ts)
	require.False(t, ok)

	// An ephemeral answer with a button: pressing it and replacing the
	// original edits the answer in place; deleting removes it.
	cmd := s.CommandPayload(slackfake.SlashCommand{Text: "help", UserID: "U1", ChannelID: "C1"})
	_, _, err = api.PostMessageContext(ctx, "", text("pick"), slack.MsgOptionBlocks(button), slack.MsgOptionResponseURL(cmd["response_url"], ""))
	require.NoError(t, err)
	rs := s.Responses()
	answer := rs[len(rs)-1]
	p, err := s.PressEphemeral(answer, "C1", "U1", "take")
	require.NoError(t, err)
	url = p["response_url"].(string)
	_, _, err = api.PostMessageContext(ctx, "", text("picked"), slack.MsgOptionReplaceOriginal(url))
	require.NoError(t, err)
	rs = s.Responses()
	require.Len(t, rs, 3)
	require.Equal(t, answer.TS, rs[2].TS)
	require.Equal(t, "picked", rs[2].Text)
	require.Equal(t, 1, rs[2].Edits)
	_, _, err = api.PostMessageContext(ctx, "", slack.MsgOptionDeleteOriginal(url))
	require.NoError(t, err)
	require.Len(t, s.Responses(), 2)

	// A slash command has no source message: its URL's replace_original
	// replaces the last message it posted.
	cmd = s.CommandPayload(slackfake.SlashCommand{Text: "help", UserID: "U1", ChannelID: "C1"})
	_, _, err = api.PostMessageContext(ctx, "", text("working…"), slack.MsgOptionResponseURL(cmd["response_url"], ""))
	require.NoError(t, err)
	_, _, err = api.PostMessageContext(ctx, "", text("done"), slack.MsgOptionReplaceOriginal(cmd["response_url"]))
	require.NoError(t, err)
	rs = s.Responses()
	require.Len(t, rs, 3)
	require.Equal(t, "done", rs[2].Text)

	mu.Lock()
	require.Empty(t, violations)
	mu.Unlock()

	// Nothing to replace: a fresh slash command URL that posted nothing.
	cmd = s.CommandPayload(slackfake.SlashCommand{Text: "help", UserID: "U1", ChannelID: "C1"})
	_, _, err = api.PostMessageContext(ctx, "", text("x"), slack.MsgOptionReplaceOriginal(cmd["response_url"]))
	require.Error(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, violations, 1)
	require.Contains(t, violations[0], "no original message")
}

// TestResponseURLExpires: a response URL answers within 30 minutes of the
// interaction only (on the fake's clock, Options.Now).
func TestResponseURLExpires(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Now()
	var violations []string
	s := slackfake.New(t, slackfake.Options{
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		OnViolation: func(v string) {
			mu.Lock()
			defer mu.Unlock()
			violations = append(violations, v)
		},
	})
	answer := func(url string) int {
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"text":"ok"}`))
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	url := s.NewResponseURL()
	mu.Lock()
	now = now.Add(29 * time.Minute)
	mu.Unlock()
	require.Equal(t, http.StatusOK, answer(url))
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	require.Equal(t, http.StatusNotFound, answer(url))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, violations, 1)
	require.Contains(t, violations[0], "expired_url")
}
