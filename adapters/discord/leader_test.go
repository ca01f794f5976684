package discord_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// replicas starts two adapters with one token against one fake, each with
// its own pool on one database, as two processes would be.
func replicas(t *testing.T) (fixture, [2]*discord.Adapter, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	admin, url := pgtest.NewWithURL(t)
	f := setup(t)
	var out [2]*discord.Adapter
	for i := range out {
		pool, err := pgxpool.New(ctx, url)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		cfg := f.cfg
		cfg.Pool = pool
		// A leader whose lock connection does not answer within
		// LeaderCheck steps down: 100ms was short enough for a loaded
		// machine (every package's tests at once) to drop the session
		// for a moment (0 sessions seen).
		cfg.LeaderCheck = 300 * time.Millisecond
		cfg.LeaderGrace = time.Second
		a, err := discord.New(cfg, testLogger(t), prometheus.NewRegistry(), f.h)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, a.Stop()) })
		require.NoError(t, a.Start(ctx))
		out[i] = a
	}
	require.True(t, f.fake.WaitSessions(1, 10*time.Second), "one replica connects")
	return f, out, admin
}

func leader(t *testing.T, rs [2]*discord.Adapter) (lead, follow *discord.Adapter) {
	t.Helper()
	require.Eventually(t, func() bool { return rs[0].Leader() != rs[1].Leader() }, 5*time.Second, 10*time.Millisecond)
	if rs[0].Leader() {
		return rs[0], rs[1]
	}
	return rs[1], rs[0]
}

func TestReplicasHoldOneGatewaySession(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kill func(t *testing.T, lead *discord.Adapter, admin *pgxpool.Pool)
	}{
		{"leader stops", func(t *testing.T, lead *discord.Adapter, _ *pgxpool.Pool) { require.NoError(t, lead.Stop()) }},
		{"leader loses its lock connection", func(t *testing.T, _ *discord.Adapter, admin *pgxpool.Pool) {
			// What the database sees when a leader dies or is cut off.
			_, err := admin.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks
				WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
			require.NoError(t, err)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, rs, admin := replicas(t)
			lead, _ := leader(t, rs)
			// The leader identifies once it holds the lock: under load
			// that can take longer than the second this test used to
			// allow (CI saw 0 sessions then).
			testwait.For(t, 10*time.Second, "the leader's session", func() bool { return f.fake.Sessions() == 1 }, f.fake)
			time.Sleep(time.Second)
			require.Equal(t, 1, f.fake.Sessions(), "one session, not two")
			before := f.fake.Identifies()

			start := time.Now()
			tt.kill(t, lead, admin)
			testwait.For(t, 10*time.Second, "another replica connects",
				func() bool { return f.fake.Identifies() > before && f.fake.Sessions() == 1 }, f.fake)
			took := time.Since(start)
			t.Logf("takeover in %s", took.Round(10*time.Millisecond))
			require.Less(t, took, 5*time.Second)
			time.Sleep(500 * time.Millisecond)
			require.Equal(t, 1, f.fake.Sessions())
			require.Equal(t, 1, f.fake.MaxSessions(), "never two sessions at once")
			_, _ = leader(t, rs)
		})
	}
}
