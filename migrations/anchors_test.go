package migrations_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/migrations"
)

// TestAnchorsMigrationKeepsEveryAnchor: the migration that makes bot_anchor
// the one record of a case's messages carries over the anchors only
// case_anchors had, under the bot's stream and target, keeps what bot_anchor
// already had (and a message that anchors something else), and drops
// case_anchors.
func TestAnchorsMigrationKeepsEveryAnchor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.Empty(t)
	all, err := migrations.All()
	require.NoError(t, err)
	at := -1
	for i, m := range all {
		if m.Name == "anchors" {
			at = i
		}
	}
	require.GreaterOrEqual(t, at, 0, "the anchors migration")
	_, err = migrations.ApplyList(ctx, pool, all[:at], nil)
	require.NoError(t, err)
	for _, key := range []string{"k1", "k2", "k3"} {
		_, err = pool.Exec(ctx, `INSERT INTO cases (org, open_key, subject_kind, category, question, priority, requester_platform,
 requester_workspace, requester_user, status, credit_used, created_at, updated_at, status_at, response_target_us, conclusion_target_us)
 VALUES ('contoso', $1, 'none', 'other', 'q', 'medium', 'slack', 'T1', 'U1', 'new', true, now(), now(), now(), 1, 2)`, key)
		require.NoError(t, err)
	}
	// EOD-1: both anchors in both tables (as the bot wrote them).
	// EOD-2: the desk card only in case_anchors (the bot's write was lost).
	// EOD-3: its receipt in case_anchors is a message bot_anchor knows as
	// an incident's notification: bot_anchor keeps it.
	_, err = pool.Exec(ctx, `INSERT INTO bot_anchor (stream, target, platform, workspace, channel, message) VALUES
 ('case:EOD-1', 'receipt', 'slack', 'T1', 'C1', '1.1'), ('case:EOD-1', 'desk', 'slack', 'T1', 'CDESK', '1.2'),
 ('case:EOD-2', 'receipt', 'slack', 'T1', 'C1', '2.1'),
 ('incident:contoso:9', 'notification', 'slack', 'T1', 'C1', '3.1')`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO case_anchors (case_number, kind, platform, workspace, channel, message, updated_at) VALUES
 (1, 'requester', 'slack', 'T1', 'C1', '1.1', now()), (1, 'desk', 'slack', 'T1', 'CDESK', '1.2', now()),
 (2, 'requester', 'slack', 'T1', 'C1', '2.1', now()), (2, 'desk', 'discord', '1000000000000000001', '1000000000000000003', '1000000000000000042', now()),
 (3, 'requester', 'slack', 'T1', 'C1', '3.1', now())`)
	require.NoError(t, err)

	_, err = migrations.ApplyList(ctx, pool, all, nil)
	require.NoError(t, err)
	rows, err := pool.Query(ctx, `SELECT stream, target, platform, channel, message FROM bot_anchor ORDER BY stream, target`)
	require.NoError(t, err)
	var got [][5]string
	for rows.Next() {
		var r [5]string
		require.NoError(t, rows.Scan(&r[0], &r[1], &r[2], &r[3], &r[4]))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, [][5]string{
		{"case:EOD-1", "desk", "slack", "CDESK", "1.2"},
		{"case:EOD-1", "receipt", "slack", "C1", "1.1"},
		{"case:EOD-2", "desk", "discord", "1000000000000000003", "1000000000000000042"},
		{"case:EOD-2", "receipt", "slack", "C1", "2.1"},
		{"incident:contoso:9", "notification", "slack", "C1", "3.1"},
	}, got)
	var left int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename = 'case_anchors'`).Scan(&left))
	require.Zero(t, left)
}
