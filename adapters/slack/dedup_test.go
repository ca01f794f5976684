package slack_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	adapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

func TestPGDeduper(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t) // migration 0005 makes slack_inbound_seen
	ctx := t.Context()
	d := adapter.NewPGDeduper(pool)
	seen, err := d.Seen(ctx, "slack:e:Ev1")
	require.NoError(t, err)
	require.False(t, seen)
	seen, err = d.Seen(ctx, "slack:e:Ev1")
	require.NoError(t, err)
	require.True(t, seen, "a redelivery is recognised")
	seen, err = adapter.NewPGDeduper(pool).Seen(ctx, "slack:e:Ev1")
	require.NoError(t, err)
	require.True(t, seen, "across adapters (restarts, replicas)")

	_, err = pool.Exec(ctx, `UPDATE slack_inbound_seen SET seen_at = now() - interval '2 days'`)
	require.NoError(t, err)
	n, err := d.Prune(ctx, 24*time.Hour)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

// TestRetriedEventProcessedOnceAcrossRestart: the first adapter processes an
// event; after a restart, Slack's redelivery reaches a new adapter sharing
// the Postgres deduper, which does not process it again.
func TestRetriedEventProcessedOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	withPG := func(c *adapter.Config) { c.Deduper = adapter.NewPGDeduper(pool) }

	f1 := setup(t, setupOpts{socket: true, cfg: withPG})
	_, cb := f1.fake.UserMessage(deskChannel, "", expert, "x")
	cb["event"].(map[string]any)["thread_ts"] = "1700000000.000001"
	cb["event_id"] = "EvRESTART"
	_, err := f1.fake.Event(f1.ctx, cb, 0)
	require.NoError(t, err)
	eventually(t, func() bool { return len(f1.rec.Replies()) == 1 }, "processed")
	f1.adapter.Stop()

	f2 := setup(t, setupOpts{socket: true, cfg: withPG})
	_, err = f2.fake.Event(f2.ctx, cb, 1)
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	require.Empty(t, f2.rec.Replies())
}
