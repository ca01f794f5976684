package migrations_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/migrations"
)

// TestInboundMigrationKeepsWhatWasSeen: the migration that makes bot_inbound
// the one inbound table carries over the keys the bot had handled and the
// replayed Slack signatures (keyed on their bytes now), and drops the
// tables it replaces.
func TestInboundMigrationKeepsWhatWasSeen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.Empty(t)
	all, err := migrations.All()
	require.NoError(t, err)
	at := -1
	for i, m := range all {
		if m.Name == "inbound" {
			at = i
		}
	}
	require.GreaterOrEqual(t, at, 0, "the inbound migration")
	_, err = migrations.ApplyList(ctx, pool, all[:at], nil)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO bot_inbound (key, seen_at) VALUES
  ('slack:command:slack:t:T1', now() - interval '1 hour'), ('discord:reply:discord:msg:9', now())`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO slack_inbound_seen (key) VALUES ('slack:sig:v0=ABCDEF01'), ('slack:t:T2'), ('slack:e:Ev1')`)
	require.NoError(t, err)

	_, err = migrations.ApplyList(ctx, pool, all, nil)
	require.NoError(t, err)
	rows, err := pool.Query(ctx, `SELECT key, platform, kind, done_at IS NOT NULL FROM bot_inbound ORDER BY key`)
	require.NoError(t, err)
	type row struct {
		key, platform, kind string
		done                bool
	}
	var got []row
	for rows.Next() {
		var r row
		require.NoError(t, rows.Scan(&r.key, &r.platform, &r.kind, &r.done))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []row{
		{"discord:reply:discord:msg:9", "discord", "reply", true},
		{"slack:command:slack:t:T1", "slack", "command", true},
		{"slack:sig:abcdef01", "slack", "replay", true},
	}, got)
	var left int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename IN ('slack_inbound_seen', 'bot_inbound_0004')`).Scan(&left))
	require.Zero(t, left)
}
