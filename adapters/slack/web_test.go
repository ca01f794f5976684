package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// recordingSignIn is a case tracker that records whom it made links for.
type recordingSignIn struct {
	mu  sync.Mutex
	got []bot.WebUser
}

func (r *recordingSignIn) SignInLink(_ context.Context, u bot.WebUser) (bot.WebLink, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, u)
	return bot.WebLink{URL: fmt.Sprintf("https://threatdesk.example.com/web/login/token%d", len(r.got)),
		ExpiresAt: time.Date(2026, 3, 18, 9, 40, 0, 0, time.UTC)}, nil
}

func (r *recordingSignIn) last() bot.WebUser {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[len(r.got)-1]
}

// TestWebSignInOverSlack: "/experts web" over Socket Mode is answered in
// the acknowledgement, ephemeral, with the sign-in link as a link; the
// link is made for the person's roles where they typed it, and is never
// stored in the inbound queue.
func TestWebSignInOverSlack(t *testing.T) {
	t.Parallel()
	const (
		team  = "T0CONTOSO"
		soc   = "C0CONTOSOSOC"
		desk  = "C0EXPERTDESK"
		alice = "U0ANALYST1"
		eve   = "U0EXPERT1"
	)
	fake := slackfake.New(t, slackfake.Options{
		TeamID:   team,
		Channels: []slackfake.Channel{{ID: soc, Name: "soc"}, {ID: desk, Name: "expert-desk"}, {ID: "C0RANDOM", Name: "random"}},
		Users:    []slackfake.User{{ID: alice, Name: "alice", DisplayName: "Alice"}, {ID: eve, Name: "eve", RealName: "Eve Expert"}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	db := pgtest.New(t)
	rb := startRealBotOn(t, ctx, fake, bot.Config{
		Orgs:    []bot.Org{{ID: "contoso", Name: "Contoso", Slack: &bot.SlackPlace{Team: team, Channels: []string{soc}}}},
		Desk:    bot.Desk{Slack: &bot.SlackDesk{Team: team, Channel: desk}},
		Experts: bot.UserIDs{Slack: []string{eve}},
	}, db)
	signer := &recordingSignIn{}
	rb.bot.SetWebSignIn(signer)

	answer := func(user, channel string) (map[string]any, string) {
		t.Helper()
		ack, err := fake.Command(ctx, slackfake.SlashCommand{UserID: user, ChannelID: channel, TeamID: team, Text: "web"})
		require.NoError(t, err)
		var p map[string]any
		require.NoError(t, json.Unmarshal(ack.Payload, &p), string(ack.Payload))
		// JSON escapes < and > as \u003c and \u003e.
		return p, strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(string(ack.Payload))
	}
	p, raw := answer(alice, soc)
	require.Equal(t, "ephemeral", p["response_type"], raw)
	require.Contains(t, raw, "<https://threatdesk.example.com/web/login/token1|Open the case tracker>")
	require.Contains(t, raw, "Contoso's cases")
	u := signer.last()
	require.Equal(t, bot.User{Platform: bot.Slack, Workspace: team, ID: alice, DisplayName: "Alice"}, u.User)
	require.Equal(t, soc, u.Channel)
	require.Equal(t, []bot.Role{bot.RoleMember}, u.Roles)
	require.Equal(t, "contoso", u.Org)

	p, raw = answer(eve, desk)
	require.Equal(t, "ephemeral", p["response_type"])
	require.Contains(t, raw, "token2")
	require.Contains(t, raw, "every org's cases")
	require.Equal(t, []bot.Role{bot.RoleExpert}, signer.last().Roles)

	_, raw = answer("U0STRANGER", "C0RANDOM")
	require.Contains(t, raw, "not connected to an organisation")
	require.Len(t, signer.got, 2, "no link for a stranger")

	var n int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM bot_inbound WHERE payload::text LIKE '%token%' OR payload::text LIKE '%"web"%'`).Scan(&n))
	require.Zero(t, n, "the command and its link are not stored")
	require.False(t, strings.Contains(raw, "token"))
}
