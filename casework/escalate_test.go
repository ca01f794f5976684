package casework_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

// sweepTwice sweeps from two replicas at the same moment and sums what they
// paged and reminded.
func sweepTwice(t *testing.T, a, b *casework.Service) (paged, reminded int) {
	t.Helper()
	var wg sync.WaitGroup
	res := make([]casework.SweepResult, 2)
	for i, svc := range []*casework.Service{a, b} {
		wg.Go(func() {
			r, err := svc.SweepSLA(context.Background())
			require.NoError(t, err)
			res[i] = r
		})
	}
	wg.Wait()
	return res[0].Paged + res[1].Paged, res[0].Reminded + res[1].Reminded
}

// payloads returns the outbox payloads of a case's events of kind.
func (f *fixture) payloads(t testing.TB, ref, kind string) []json.RawMessage {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT payload FROM outbox WHERE stream = $1 AND kind = $2 ORDER BY id`, casework.Stream(ref), kind)
	require.NoError(t, err)
	defer rows.Close()
	var out []json.RawMessage
	for rows.Next() {
		var p json.RawMessage
		require.NoError(t, rows.Scan(&p))
		out = append(out, p)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestPageHighPriorityNobodyTookOnce: a high-priority case still new after
// PageAfter is paged once, even with two replicas sweeping at once; a
// medium one, and a high one taken in time, are not.
func TestPageHighPriorityNobodyTookOnce(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.PageAfter = 15 * time.Minute })
	ctx := context.Background()
	other := f.another(t)

	high := f.open(t, "contoso")
	require.Equal(t, casework.PriorityHigh, high.Priority)
	req := f.openReq("contoso")
	req.Subject.Severity = "medium"
	medium, _, err := f.svc.Open(ctx, req)
	require.NoError(t, err)
	require.Equal(t, casework.PriorityMedium, medium.Priority)
	taken := f.open(t, "contoso")
	_, err = f.svc.Take(ctx, taken.Ref, expert("U-expert"))
	require.NoError(t, err)

	f.clock.Advance(14 * time.Minute)
	paged, _ := sweepTwice(t, f.svc, other)
	require.Zero(t, paged, "not yet")

	f.clock.Advance(2 * time.Minute)
	before := f.get(t, high.Ref)
	paged, _ = sweepTwice(t, f.svc, other)
	require.Equal(t, 1, paged, "the untaken high-priority case, once")
	paged, _ = sweepTwice(t, f.svc, other)
	require.Zero(t, paged, "never twice")

	ps := f.payloads(t, high.Ref, casework.EventPaged)
	require.Len(t, ps, 1)
	var ev casework.PagedEvent
	require.NoError(t, json.Unmarshal(ps[0], &ev))
	require.True(t, ev.PagedAt.Equal(f.clock.Now()), "paged at the sweep's time: %s", ev.PagedAt)
	ev.PagedAt = time.Time{}
	require.Equal(t, casework.PagedEvent{Ref: high.Ref, Priority: casework.PriorityHigh, OpenedAt: high.CreatedAt, WaitedSeconds: 16 * 60}, ev)
	require.Empty(t, f.payloads(t, medium.Ref, casework.EventPaged))
	require.Empty(t, f.payloads(t, taken.Ref, casework.EventPaged))

	after := f.get(t, high.Ref)
	require.Equal(t, casework.StatusNew, after.Status, "paging changes nothing of the case")
	require.Equal(t, before.UpdatedAt, after.UpdatedAt, "nobody changed it")
	entries, err := f.svc.Timeline(ctx, casework.AllOrgs(), high.Ref)
	require.NoError(t, err)
	require.Equal(t, casework.EventPaged, entries[len(entries)-1].Kind, "on the timeline")
	require.NoError(t, f.svc.VerifyTimeline(ctx, casework.AllOrgs(), high.Ref))
}

// TestNoPageAfterNeverPages: PageAfter zero (no oncall.page_after handed
// over) pages nothing.
func TestNoPageAfterNeverPages(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := f.open(t, "contoso")
	f.clock.Advance(48 * time.Hour)
	res := sweep(t, f.svc)
	require.Zero(t, res.Paged)
	require.Empty(t, f.payloads(t, c.Ref, casework.EventPaged))
}

// TestRemindRequesterOncePerWait: a case waiting on its requester for
// RemindAfter is reminded once; the SLA clock stays paused; a later wait is
// reminded again.
func TestRemindRequesterOncePerWait(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.RemindAfter = 24 * time.Hour })
	ctx := context.Background()
	other := f.another(t)
	c := f.into(t, "contoso", casework.StatusMoreInfoNeeded)
	sla, err := f.svc.SLA(ctx, casework.AllOrgs(), c.Ref)
	require.NoError(t, err)
	elapsed := sla.Conclusion.Elapsed

	f.clock.Advance(23 * time.Hour)
	_, reminded := sweepTwice(t, f.svc, other)
	require.Zero(t, reminded, "not yet")
	f.clock.Advance(2 * time.Hour)
	_, reminded = sweepTwice(t, f.svc, other)
	require.Equal(t, 1, reminded)
	_, reminded = sweepTwice(t, f.svc, other)
	require.Zero(t, reminded, "once per wait")

	ps := f.payloads(t, c.Ref, casework.EventReminded)
	require.Len(t, ps, 1)
	var ev casework.RemindedEvent
	require.NoError(t, json.Unmarshal(ps[0], &ev))
	require.Equal(t, casework.StatusMoreInfoNeeded, ev.Status)
	require.Equal(t, int64(25*3600), ev.WaitedSeconds)
	require.Equal(t, "U-analyst", ev.Requester.UserID)

	got := f.get(t, c.Ref)
	require.Equal(t, casework.StatusMoreInfoNeeded, got.Status, "a reminder is not a status change")
	sla, err = f.svc.SLA(ctx, casework.AllOrgs(), c.Ref)
	require.NoError(t, err)
	require.True(t, sla.Paused, "the SLA clock stays paused")
	require.Equal(t, elapsed, sla.Conclusion.Elapsed, "and counted nothing while waiting")
	require.NoError(t, f.svc.VerifyTimeline(ctx, casework.AllOrgs(), c.Ref))

	// The requester answers; later the expert waits again: a new reminder.
	_, err = f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: requester("contoso", "U-analyst"), Side: casework.SideRequester, Text: "here it is"})
	require.NoError(t, err)
	require.Equal(t, casework.StatusInProgress, f.get(t, c.Ref).Status)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusFileSampleNeeded, Actor: expert("U-expert")})
	require.NoError(t, err)
	f.clock.Advance(24*time.Hour + time.Minute)
	_, reminded = sweepTwice(t, f.svc, other)
	require.Equal(t, 1, reminded, "the second wait is reminded too")
	require.Len(t, f.payloads(t, c.Ref, casework.EventReminded), 2)
}

func TestRemindAfterConfig(t *testing.T) {
	t.Parallel()
	c := casework.Config{}.WithDefaults()
	require.Equal(t, 24*time.Hour, c.RemindAfter)
	require.Zero(t, c.PageAfter, "paging is off unless oncall.page_after is handed over")
	c.RemindAfter = 30 * time.Second
	require.ErrorContains(t, c.Validate(), "cases.remind_after 30s is too short: use at least 1m (default 24h)")
	c.RemindAfter, c.PageAfter = time.Hour, -time.Minute
	require.ErrorContains(t, c.Validate(), "PageAfter -1m0s must not be negative")
}
