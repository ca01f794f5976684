package bot_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// afterOpen runs a hook once casework has committed a case.
type afterOpen struct {
	Cases
	hook func()
}

func (a afterOpen) Open(ctx context.Context, o OpenCase) (CaseView, error) {
	cv, err := a.Cases.Open(ctx, o)
	if err == nil {
		a.hook()
	}
	return cv, err
}

// TestCommittedOpenIsNeverReportedAsFailed: the bot's database goes away
// the moment casework has committed the case. Where the case was asked went
// into that same transaction, so the requester is told the case is open
// (before, the bot wrote the origin after the commit, failed, and said
// nothing had changed, and a retry opened a second case on a second
// credit). The receipt then goes straight to the channel asked in, and a
// retried command with the same key answers with the same case and spends
// nothing.
func TestCommittedOpenIsNeverReportedAsFailed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := pgtest.NewWithURL(t)
	key, err := secrets.Generate()
	require.NoError(t, err)
	cw, err := casework.New(db, casework.Config{Key: key}, nil, nil)
	require.NoError(t, err)

	// The bot's own pool: closed right after the open commits.
	botDB, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	cases := afterOpen{Cases: NewCaseworkCases(cw), hook: botDB.Close}
	b, err := New(testConfig(), botDB, cases, nil, slog.New(slog.NewTextHandler(testWriter{t}, nil)), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Stop()) })
	sl := bottest.New(Slack, slackTeam)
	sl.SetName(analyst, "Ana Lyst")
	require.NoError(t, b.Register(sl))

	cmd := Command{User: User{Platform: Slack, Workspace: slackTeam, ID: analyst}, Channel: contosoSOC2,
		Name: "ask", Args: []string{"is this ransomware?"}, Text: `"is this ransomware?"`, Key: "cmd-1"}
	r := bottest.NewResponder()
	cmd.Respond = r
	b.HandleCommand(ctx, cmd)
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Opened EOD-1", "a committed case is reported as opened")
	require.NotContains(t, plain(got.Message), "nothing was changed")

	c, err := cw.Get(ctx, casework.AllOrgs(), "EOD-1")
	require.NoError(t, err)
	require.Equal(t, casework.Place{Platform: "slack", Workspace: slackTeam, Channel: contosoSOC2}, c.Origin,
		"the origin is stored with the case")

	// A bot on a working pool delivers: the receipt goes to the channel
	// asked in (the org's second channel, not its first), without waiting.
	f := setupOn(t, db, true)
	posted(t, f.slack, contosoSOC2, nil, "EOD-1 ·")
	require.Zero(t, f.slack.Count(bottest.OpPost, func(c bottest.Call) bool {
		return c.Dest.Channel == contosoSOC && strings.Contains(bottest.Plain(c.Message), "EOD-1")
	}))

	// The platform retries the command after the bot's dedup record is gone
	// (pruned, another store): casework's open key answers with the same
	// case, and no second credit is spent.
	_, err = db.Exec(ctx, `DELETE FROM bot_inbound`)
	require.NoError(t, err)
	retry := cmd
	r2 := bottest.NewResponder()
	retry.Respond = r2
	f.bot.HandleCommand(ctx, retry)
	got, ok = r2.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Opened EOD-1")
	var n int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM cases`).Scan(&n))
	require.Equal(t, 1, n, "no second case")
	bal, err := cw.Credits(ctx, casework.OrgViewer("contoso"), "contoso")
	require.NoError(t, err)
	require.Equal(t, 9, bal.Balance, "one credit, spent once")
}
