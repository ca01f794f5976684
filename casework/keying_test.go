package casework_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/testclock"
	"github.com/threatdesk/threatdesk/migrations"
)

// attacker rewrites timelines as someone with write access to the tables
// but without THREATDESK_SECRET_KEY would: triggers off, entries changed and
// the chain rehashed with the (public) unkeyed algorithm, the head on the
// case row moved along.
type attacker struct {
	t    *testing.T
	pool *pgxpool.Pool
}

// rehash replaces a case's timeline from entry `from` on with entries
// (already changed by the caller), chaining each with SHA-256 and writing
// alg for each; it moves the case's head and length to the new last entry.
func (a attacker) rehash(ref string, entries []casework.Entry, from int, alg int, setLegacyLen bool) {
	t := a.t
	t.Helper()
	ctx := context.Background()
	n, err := casework.ParseRef(ref)
	require.NoError(t, err)
	prev := make([]byte, 32)
	if from > 1 {
		prev = entries[from-2].Hash
	}
	for i := from - 1; i < len(entries); i++ {
		entries[i].PrevHash = prev
		entries[i].Hash, err = casework.LegacyHash(ref, entries[i])
		require.NoError(t, err)
		prev = entries[i].Hash
	}
	tx, err := a.pool.BeginTx(ctx, pgx.TxOptions{})
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SET LOCAL session_replication_role = replica")
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `DELETE FROM case_timeline WHERE case_number = $1 AND seq >= $2`, n, from)
	require.NoError(t, err)
	for _, e := range entries[from-1:] {
		_, err = tx.Exec(ctx, `INSERT INTO case_timeline (case_number, seq, at, kind, actor_role, actor_id, actor_name, detail, prev_hash, hash, alg)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`, n, e.Seq, e.At, e.Kind, e.Actor.Role, e.Actor.UserID, e.Actor.DisplayName,
			string(e.Detail), e.PrevHash, e.Hash, alg)
		require.NoError(t, err)
	}
	_, err = tx.Exec(ctx, `UPDATE cases SET timeline_len = $2, timeline_head = $3 WHERE number = $1`, n, len(entries), prev)
	require.NoError(t, err)
	if setLegacyLen {
		_, err = tx.Exec(ctx, `UPDATE cases SET timeline_legacy_len = timeline_len WHERE number = $1`, n)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit(ctx))
}

func (f *fixture) entries(t *testing.T, ref string) []casework.Entry {
	t.Helper()
	tl, err := f.svc.Timeline(context.Background(), casework.AllOrgs(), ref)
	require.NoError(t, err)
	return tl
}

// concludedCase is a case with six entries; entry 5 is the expert's message.
func (f *fixture) concludedCase(t *testing.T) *casework.Case {
	t.Helper()
	ctx := context.Background()
	c := f.into(t, "contoso", casework.StatusInProgress)
	_, err := f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: expert("U-expert"), Text: "benign"})
	require.NoError(t, err)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusConcluded, Actor: expert("U-expert"), Summary: "benign"})
	require.NoError(t, err)
	require.NoError(t, f.svc.VerifyTimeline(ctx, casework.AllOrgs(), c.Ref))
	return c
}

func malicious(e *casework.Entry) {
	e.Detail = json.RawMessage(strings.Replace(string(e.Detail), "benign", "malicious", 1))
}

// TestRewriteWithoutTheKeyIsDetected: every way of rewriting a timeline and
// its head without the key fails verification; with the old unkeyed chain
// each of these passed.
func TestRewriteWithoutTheKeyIsDetected(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	bad := attacker{t: t, pool: f.pool}
	for _, tc := range []struct {
		name    string
		attack  func(ref string, tl []casework.Entry)
		wantSeq int
		reason  string
	}{
		{"edited and rehashed", func(ref string, tl []casework.Entry) {
			malicious(&tl[4])
			bad.rehash(ref, tl, 5, 2, false)
		}, 5, "rehashed without the key"},
		{"edited and rehashed as legacy entries", func(ref string, tl []casework.Entry) {
			malicious(&tl[4])
			bad.rehash(ref, tl, 5, 1, false)
		}, 5, "unkeyed entry"},
		{"whole chain rehashed as legacy", func(ref string, tl []casework.Entry) {
			malicious(&tl[4])
			bad.rehash(ref, tl, 1, 1, true)
		}, 1, "opened after the timeline was keyed"},
		{"last entry removed, head moved back", func(ref string, tl []casework.Entry) {
			bad.rehash(ref, tl[:5], 6, 2, false) // deletes entry 6, head = entry 5
		}, 5, "MAC over the chain head does not verify"},
		{"head MAC removed", func(ref string, _ []casework.Entry) {
			n, _ := casework.ParseRef(ref)
			_, err := f.pool.Exec(ctx, `UPDATE cases SET timeline_mac = NULL WHERE number = $1`, n)
			require.NoError(t, err)
		}, 6, "carries no MAC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.concludedCase(t)
			tc.attack(c.Ref, f.entries(t, c.Ref))
			err := f.svc.VerifyTimeline(ctx, casework.AllOrgs(), c.Ref)
			var te *casework.TamperError
			require.ErrorAs(t, err, &te)
			require.Equal(t, c.Ref, te.Ref)
			require.Equal(t, tc.wantSeq, te.Seq, "%v", err)
			require.Contains(t, te.Reason, tc.reason)
		})
	}

	// Another key does not verify what this one wrote.
	c := f.concludedCase(t)
	other, err := casework.New(f.pool, casework.Config{Now: f.clock.Now, Key: testKey(t)}, nil, nil)
	require.NoError(t, err)
	var te *casework.TamperError
	require.ErrorAs(t, other.VerifyTimeline(ctx, casework.AllOrgs(), c.Ref), &te)
	require.Equal(t, 1, te.Seq)
}

// recorder is a slog handler that hands error records to a channel.
type recorder struct {
	recs chan slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelError {
		r.recs <- rec.Clone()
	}
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func attrs(rec slog.Record) map[string]string {
	out := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool {
		out[a.Key] = a.Value.String()
		return true
	})
	return out
}

// TestScheduledCheckAlarms: the check Start schedules finds a rewritten
// timeline, logs it at error level and counts it.
func TestScheduledCheckAlarms(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ok := f.concludedCase(t)
	broken := f.concludedCase(t)
	tl := f.entries(t, broken.Ref)
	malicious(&tl[4])
	attacker{t: t, pool: f.pool}.rehash(broken.Ref, tl, 5, 2, false)

	rec := &recorder{recs: make(chan slog.Record, 16)}
	reg := prometheus.NewRegistry()
	cfg := f.cfg
	cfg.TimelineCheckEvery = time.Hour // the first check runs at start
	svc, err := casework.New(f.pool, cfg, slog.New(rec), reg)
	require.NoError(t, err)
	require.NoError(t, svc.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, svc.Stop()) })

	select {
	case r := <-rec.recs:
		require.Equal(t, "timeline tamper detected", r.Message)
		a := attrs(r)
		require.Equal(t, broken.Ref, a["ref"])
		require.Equal(t, "5", a["seq"])
		require.Contains(t, a["reason"], "rehashed without the key")
	case <-time.After(30 * time.Second):
		t.Fatal("the scheduled check logged nothing")
	}
	// The gauge is set after the log lines of one check.
	require.Eventually(t, func() bool {
		return metricValue(t, reg, "threatdesk_casework_timeline_broken_cases") == 1
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, 1.0, metricValue(t, reg, "threatdesk_casework_timeline_breaks_total"))
	require.Equal(t, float64(t0.Unix()), metricValue(t, reg, "threatdesk_casework_timeline_last_check_timestamp_seconds"))

	res, err := svc.VerifyAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, res.Checked)
	require.Len(t, res.Broken, 1)
	require.ErrorContains(t, res.Broken[0], broken.Ref)
	require.NotContains(t, res.Broken[0].Error(), ok.Ref)
}

// metricValue reads an unlabelled counter or gauge from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestLegacyTimelinesStillVerify builds a database as it was before the
// chain was keyed (migrations up to the one that keys it, a case written
// with the unkeyed algorithm and its origin in the bot's old table), then
// migrates: the case keeps its origin, its timeline verifies before and
// after the first start seals it, new entries are keyed and chain onto the
// legacy ones, and rewriting the legacy part without the key is caught.
func TestLegacyTimelinesStillVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.Empty(t)
	all, err := migrations.All()
	require.NoError(t, err)
	split := -1
	for i, m := range all {
		if m.Name == "case_origin" {
			split = i
		}
	}
	require.Positive(t, split, "the migration that moves the origin onto cases")
	_, err = migrations.ApplyList(ctx, pool, all[:split], nil)
	require.NoError(t, err)

	// A case opened by the old code: two unkeyed entries, its origin in bot_case_origin.
	at := t0.Add(-time.Hour)
	requesterP := requester("contoso", "U-analyst").Person
	actor := casework.Actor{Role: casework.RoleRequester, Org: "contoso", Person: requesterP}
	entries := []casework.Entry{
		{Seq: 1, At: at, Kind: casework.EventOpened, Actor: actor, Detail: json.RawMessage(`{"ref":"EOD-1","org":"contoso","question":"old benign question"}`)},
		{Seq: 2, At: at, Kind: casework.EventCreditsChanged, Actor: actor, Detail: json.RawMessage(`{"ref":"EOD-1","org":"contoso","delta":-1,"balance":9}`)},
	}
	prev := make([]byte, 32)
	for i := range entries {
		entries[i].PrevHash = prev
		entries[i].Hash, err = casework.LegacyHash("EOD-1", entries[i])
		require.NoError(t, err)
		prev = entries[i].Hash
	}
	_, err = pool.Exec(ctx, `INSERT INTO cases (org, open_key, subject_kind, category, question, priority, requester_platform,
 requester_workspace, requester_user, requester_name, status, credit_used, created_at, updated_at, status_at, response_target_us,
 conclusion_target_us, sla_elapsed_us, sla_running_since, timeline_len, timeline_head)
 VALUES ('contoso', 'k-old', 'none', 'other', 'old benign question', 'medium', 'slack', $1, 'U-analyst', 'U-analyst', 'new', true,
 $2, $2, $2, 14400000000, 172800000000, 0, $2, 2, $3)`, requesterP.Workspace, at, prev)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO case_status_periods (case_number, seq, status, started_at) VALUES (1, 1, 'new', $1)`, at)
	require.NoError(t, err)
	for _, e := range entries {
		_, err = pool.Exec(ctx, `INSERT INTO case_timeline (case_number, seq, at, kind, actor_role, actor_id, actor_name, detail, prev_hash, hash)
 VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9)`, e.Seq, e.At, e.Kind, e.Actor.Role, e.Actor.UserID, e.Actor.DisplayName, string(e.Detail), e.PrevHash, e.Hash)
		require.NoError(t, err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO bot_case_origin (ref, platform, workspace, channel) VALUES ('EOD-1', 'slack', $1, 'C0CONTOSOIR')`, requesterP.Workspace)
	require.NoError(t, err)

	_, err = migrations.ApplyList(ctx, pool, all[split:], nil)
	require.NoError(t, err)
	var originTable *string
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass('bot_case_origin')::text`).Scan(&originTable))
	require.Nil(t, originTable, "the bot's origin table is gone")

	clock := testclock.New(t0)
	key := testKey(t)
	svc, err := casework.New(pool, casework.Config{Now: clock.Now, Key: key}, nil, nil)
	require.NoError(t, err)
	all1 := casework.AllOrgs()
	old, err := svc.Get(ctx, all1, "EOD-1")
	require.NoError(t, err)
	require.Equal(t, casework.Place{Platform: "slack", Workspace: requesterP.Workspace, Channel: "C0CONTOSOIR"}, old.Origin, "migrated from bot_case_origin")
	require.NoError(t, svc.VerifyTimeline(ctx, all1, "EOD-1"), "unsealed legacy entries verify as before")

	n, err := svc.SealLegacy(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = svc.SealLegacy(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "sealed once")
	require.NoError(t, svc.VerifyTimeline(ctx, all1, "EOD-1"), "sealed legacy entries verify")

	// New entries of the old case are keyed and chain onto its legacy head.
	_, err = svc.AddMessage(ctx, casework.MessageRequest{Ref: "EOD-1", Actor: actor, Text: "any news?"})
	require.NoError(t, err)
	require.NoError(t, svc.VerifyTimeline(ctx, all1, "EOD-1"))
	tl, err := svc.Timeline(ctx, all1, "EOD-1")
	require.NoError(t, err)
	require.Equal(t, []bool{false, false, true}, []bool{tl[0].Keyed, tl[1].Keyed, tl[2].Keyed})

	// A new case is keyed throughout.
	fresh, _, err := svc.Open(ctx, casework.OpenRequest{Key: "k-new", Org: "contoso", Question: "new one", Requester: requesterP})
	require.NoError(t, err)
	require.Equal(t, "EOD-2", fresh.Ref)
	require.NoError(t, svc.VerifyTimeline(ctx, all1, fresh.Ref))

	// Rewriting the legacy part and rehashing all of it (the keyed entry
	// passed off as legacy too) is caught.
	bad := attacker{t: t, pool: pool}
	tl[0].Detail = json.RawMessage(strings.Replace(string(tl[0].Detail), "benign", "malicious", 1))
	bad.rehash("EOD-1", tl, 1, 1, true)
	var te *casework.TamperError
	require.ErrorAs(t, svc.VerifyTimeline(ctx, all1, "EOD-1"), &te)
	require.Contains(t, te.Reason, "MAC over the chain head does not verify")

	// A legacy case whose MAC is removed after sealing is caught too.
	_, err = pool.Exec(ctx, `UPDATE cases SET timeline_mac = NULL WHERE number = 1`)
	require.NoError(t, err)
	require.ErrorAs(t, svc.VerifyTimeline(ctx, all1, "EOD-1"), &te)
	require.Contains(t, te.Reason, "carries no MAC")

	// Starting with another key is refused: the keying record does not verify.
	wrong, err := casework.New(pool, casework.Config{Now: clock.Now, Key: testKey(t)}, nil, nil)
	require.NoError(t, err)
	err = wrong.Start(ctx)
	var ke *casework.KeyingError
	require.ErrorAs(t, err, &ke)
	require.Contains(t, err.Error(), "another key")
	require.NotContains(t, err.Error(), key.Encode())
	_, err = wrong.VerifyAll(ctx)
	require.ErrorAs(t, err, &ke)

	// And a deleted keying record is tampering, not a fresh start.
	_, err = pool.Exec(ctx, `DELETE FROM casework_timeline_keying`)
	require.NoError(t, err)
	require.ErrorAs(t, svc.Start(ctx), &ke)
	require.Contains(t, ke.Error(), "missing")
}
