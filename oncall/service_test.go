package oncall_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/oncall"
)

// In London, weekly on Monday at 09:00: slot 113 runs from Monday 2 March
// 2026 09:00 GMT to Monday 9 March 09:00 GMT. With alice, bob, carol, dave
// it is bob's (113 mod 4 = 1), and carol is next.
var (
	shiftStart = utc(2026, 3, 2, 9, 0)
	shiftEnd   = utc(2026, 3, 9, 9, 0)
	midShift   = utc(2026, 3, 4, 10, 15)
)

type fixture struct {
	pool *pgxpool.Pool
	svc  *oncall.Service
	cfg  oncall.Config
	loc  *time.Location
}

// setup returns a Service on a fresh database with the rotation alice, bob,
// carol, dave handing over on Mondays at 09:00 London time.
func setup(t *testing.T) *fixture {
	t.Helper()
	pool := pgtest.New(t)
	cfg := oncall.Config{
		Handover: mustHandover(t, "Mon 09:00"),
		Rotation: []oncall.Member{alice, bob, carol, dave},
	}
	loc := mustLoad(t, "Europe/London")
	svc, err := oncall.New(pool, cfg, loc, nil)
	require.NoError(t, err)
	return &fixture{pool: pool, svc: svc, cfg: cfg, loc: loc}
}

// with returns a Service on the same database with another config (a
// restart after the config changed, or another replica).
func (f *fixture) with(t *testing.T, mod func(*oncall.Config)) *oncall.Service {
	t.Helper()
	cfg := f.cfg
	cfg.Rotation = append([]oncall.Member(nil), f.cfg.Rotation...)
	if mod != nil {
		mod(&cfg)
	}
	svc, err := oncall.New(f.pool, cfg, f.loc, nil)
	require.NoError(t, err)
	return svc
}

// taken returns the payloads of every oncall.taken outbox row, in order.
func (f *fixture) taken(t *testing.T) []oncall.TakenEvent {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT stream, payload FROM outbox WHERE kind = $1 ORDER BY id`, oncall.EventTaken)
	require.NoError(t, err)
	defer rows.Close()
	var out []oncall.TakenEvent
	for rows.Next() {
		var stream string
		var raw []byte
		require.NoError(t, rows.Scan(&stream, &raw))
		require.Equal(t, oncall.Stream, stream)
		var ev oncall.TakenEvent
		require.NoError(t, json.Unmarshal(raw, &ev))
		out = append(out, ev)
	}
	require.NoError(t, rows.Err())
	return out
}

func (f *fixture) takeRows(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT count(*) FROM oncall_take`).Scan(&n))
	return n
}

func TestCurrentFollowsTheSchedule(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	// 2 March 2026 is 113 weeks after 1 January 2024: 113 mod 4 = 1.
	cur, err := f.svc.Current(ctx, midShift)
	require.NoError(t, err)
	require.Equal(t, bob, cur.Member)
	require.Equal(t, bob, cur.Scheduled)
	require.Equal(t, carol, cur.Next)
	require.Nil(t, cur.Take)
	require.True(t, shiftStart.Equal(cur.Since))
	require.True(t, shiftEnd.Equal(cur.Until))
	require.Equal(t, "Europe/London", cur.Until.Location().String())

	cur, err = f.svc.Current(ctx, shiftEnd)
	require.NoError(t, err)
	require.Equal(t, carol, cur.Member, "the hand-over passes the pager")
}

func TestTakeHoldsThePagerUntilTheHandover(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()

	got, err := f.svc.Take(ctx, dave, midShift)
	require.NoError(t, err)
	require.Equal(t, dave, got.Member)
	require.Equal(t, bob, got.Scheduled)
	require.Equal(t, carol, got.Next)
	require.True(t, midShift.Equal(got.Since))
	require.True(t, shiftEnd.Equal(got.Until))
	require.NotNil(t, got.Take)
	require.Equal(t, bob, got.Take.Displaced)
	require.False(t, got.Take.DisplacedTake)

	for _, at := range []time.Time{midShift, midShift.Add(time.Hour), shiftEnd.Add(-time.Microsecond)} {
		cur, err := f.svc.Current(ctx, at)
		require.NoError(t, err)
		require.Equal(t, dave, cur.Member, "at %s", at)
		require.Equal(t, bob, cur.Scheduled)
		require.True(t, shiftEnd.Equal(cur.Until))
		require.Equal(t, carol, cur.Next)
		require.NotNil(t, cur.Take)
		require.Equal(t, got.Take.ID, cur.Take.ID)
	}
	cur, err := f.svc.Current(ctx, midShift.Add(-time.Second))
	require.NoError(t, err)
	require.Equal(t, bob, cur.Member, "not before it was taken")

	// The hand-over ends the take.
	cur, err = f.svc.Current(ctx, shiftEnd)
	require.NoError(t, err)
	require.Equal(t, carol, cur.Member)
	require.Nil(t, cur.Take)

	evs := f.taken(t)
	require.Len(t, evs, 1)
	require.Equal(t, oncall.TakenEvent{
		TakeID: got.Take.ID, Member: dave, TakenAt: midShift, Until: shiftEnd,
		Displaced: bob, Next: carol, Timezone: "Europe/London",
	}, evs[0])
}

func TestTakeOverATake(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	_, err := f.svc.Take(ctx, dave, midShift)
	require.NoError(t, err)
	got, err := f.svc.Take(ctx, alice, midShift.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, dave, got.Take.Displaced)
	require.True(t, got.Take.DisplacedTake)

	// The scheduled expert takes it back.
	back, err := f.svc.Take(ctx, bob, midShift.Add(2*time.Hour))
	require.NoError(t, err)
	require.Equal(t, alice, back.Take.Displaced)

	cur, err := f.svc.Current(ctx, midShift.Add(3*time.Hour))
	require.NoError(t, err)
	require.Equal(t, bob, cur.Member)
	require.NotNil(t, cur.Take)

	evs := f.taken(t)
	require.Len(t, evs, 3)
	require.Equal(t, []oncall.Member{dave, alice, bob}, []oncall.Member{evs[0].Member, evs[1].Member, evs[2].Member})
	require.Equal(t, []oncall.Member{bob, dave, alice}, []oncall.Member{evs[0].Displaced, evs[1].Displaced, evs[2].Displaced})
	require.Equal(t, []bool{false, true, true}, []bool{evs[0].DisplacedTake, evs[1].DisplacedTake, evs[2].DisplacedTake})
}

func TestTakeRefusals(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	stranger := oncall.Member{Platform: oncall.PlatformSlack, UserID: "U0STRANGER"}

	_, err := f.svc.Take(ctx, stranger, midShift)
	var notIn *oncall.NotInRotationError
	require.ErrorAs(t, err, &notIn)
	require.Equal(t, stranger, notIn.Member)
	require.EqualError(t, err, "slack:U0STRANGER is not on the on-call rotation, so cannot take the pager: an admin adds experts to oncall.rotation in the config file")

	// Same user id on the other platform is someone else.
	_, err = f.svc.Take(ctx, oncall.Member{Platform: oncall.PlatformDiscord, UserID: bob.UserID}, midShift)
	require.ErrorAs(t, err, &notIn)

	// The scheduled expert already holds it.
	_, err = f.svc.Take(ctx, bob, midShift)
	var already *oncall.AlreadyOnCallError
	require.ErrorAs(t, err, &already)
	require.True(t, shiftEnd.Equal(already.Until))
	require.EqualError(t, err, "slack:U0BOB already holds the pager until Mon 9 Mar 09:00 GMT")

	// A repeated take (a retried command) is refused the same way.
	_, err = f.svc.Take(ctx, dave, midShift)
	require.NoError(t, err)
	_, err = f.svc.Take(ctx, dave, midShift.Add(time.Minute))
	require.ErrorAs(t, err, &already)

	require.Equal(t, 1, f.takeRows(t), "refusals write nothing")
	require.Len(t, f.taken(t), 1, "refusals announce nothing")
}

func TestTakeBySomeoneWhoLeftIsIgnored(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	_, err := f.svc.Take(ctx, dave, midShift)
	require.NoError(t, err)

	// dave leaves the rotation (and the config); the service restarts.
	after := f.with(t, func(c *oncall.Config) { c.Rotation = []oncall.Member{alice, bob, carol} })
	at := midShift.Add(time.Hour)
	cur, err := after.Current(ctx, at)
	require.NoError(t, err)
	require.NotEqual(t, dave, cur.Member)
	require.Nil(t, cur.Take, "dave's take is ignored: the schedule applies")
	require.Equal(t, after.Schedule().At(at).OnCall, cur.Member)

	pt, err := after.PageTargets(ctx, at)
	require.NoError(t, err)
	require.NotEqual(t, dave, pt.OnCall)
	require.NotEqual(t, dave, pt.Next)

	// Nor can he take it again.
	_, err = after.Take(ctx, dave, at)
	var notIn *oncall.NotInRotationError
	require.ErrorAs(t, err, &notIn)

	// Over a year of shifts, he is never on call or next.
	for tt := at; tt.Before(at.AddDate(1, 0, 0)); tt = tt.Add(24 * time.Hour) {
		cur, err := after.Current(ctx, tt)
		require.NoError(t, err)
		require.NotEqual(t, dave, cur.Member, "at %s", tt)
		require.NotEqual(t, dave, cur.Next, "at %s", tt)
	}
}

// TestEarlierTakeStandsWhenTheLaterOnesMemberLeft: bob is scheduled, dave
// takes the pager, then carol takes it from him; carol then leaves the
// rotation. Dave, whose take is still in force, holds the pager again, not
// bob, who handed it over (it used to fall back to the schedule).
func TestEarlierTakeStandsWhenTheLaterOnesMemberLeft(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	_, err := f.svc.Take(ctx, dave, midShift)
	require.NoError(t, err)
	_, err = f.svc.Take(ctx, carol, midShift.Add(time.Hour))
	require.NoError(t, err)

	// Slot 113 of three is the third: bob is still scheduled.
	after := f.with(t, func(c *oncall.Config) { c.Rotation = []oncall.Member{dave, alice, bob} })
	at := midShift.Add(2 * time.Hour)
	cur, err := after.Current(ctx, at)
	require.NoError(t, err)
	require.Equal(t, bob, cur.Scheduled)
	require.Equal(t, dave, cur.Member)
	require.NotNil(t, cur.Take)
	require.Equal(t, dave, cur.Take.Member)
	require.True(t, shiftEnd.Equal(cur.Until), "until the shift's hand-over, %s", cur.Until)

	pt, err := after.PageTargets(ctx, at)
	require.NoError(t, err)
	require.Equal(t, dave, pt.OnCall)

	// Dave holds it: his take is refused as a repeat.
	_, err = after.Take(ctx, dave, at)
	var already *oncall.AlreadyOnCallError
	require.ErrorAs(t, err, &already)

	// At the hand-over the schedule applies again.
	next, err := after.Current(ctx, shiftEnd)
	require.NoError(t, err)
	require.Nil(t, next.Take)
}

func TestTakeEndsAtAnEarlierHandoverAfterAConfigChange(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	_, err := f.svc.Take(ctx, dave, midShift) // until Monday 9 March
	require.NoError(t, err)

	daily := f.with(t, func(c *oncall.Config) { c.Handover = mustHandover(t, "daily 09:00") })
	cur, err := daily.Current(ctx, midShift.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, dave, cur.Member)
	require.True(t, utc(2026, 3, 5, 9, 0).Equal(cur.Until), "capped at the next hand-over: %s", cur.Until)
	require.Equal(t, daily.Schedule().At(cur.Until).OnCall, cur.Next)

	cur, err = daily.Current(ctx, utc(2026, 3, 5, 9, 0))
	require.NoError(t, err)
	require.Nil(t, cur.Take, "the take does not outlive the shift it was taken in")
	require.Equal(t, daily.Schedule().At(utc(2026, 3, 5, 9, 0)).OnCall, cur.Member)
}

// TestConcurrentTakesAreSerialised: several replicas take at once. The same
// expert (a command retried on two replicas) is recorded and announced once;
// different experts each displace the one before, in commit order.
func TestConcurrentTakesAreSerialised(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	replicas := []*oncall.Service{f.svc, f.with(t, nil), f.with(t, nil), f.with(t, nil)}

	var wg sync.WaitGroup
	errs := make([]error, len(replicas))
	for i, svc := range replicas {
		wg.Go(func() { _, errs[i] = svc.Take(ctx, dave, midShift) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		var already *oncall.AlreadyOnCallError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &already):
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	require.Equal(t, 1, ok, "one take succeeds")
	require.Len(t, f.taken(t), 1, "announced once")

	who := []oncall.Member{alice, carol, bob}
	for i, m := range who {
		wg.Go(func() { _, errs[i] = replicas[i].Take(ctx, m, midShift.Add(time.Minute)) })
	}
	wg.Wait()
	for _, err := range errs[:len(who)] {
		require.NoError(t, err)
	}
	evs := f.taken(t)
	require.Len(t, evs, 4)
	// Each take displaced exactly the holder before it: the chain is unbroken.
	for i := 1; i < len(evs); i++ {
		require.Equal(t, evs[i-1].Member, evs[i].Displaced, "take %d", i)
		require.True(t, evs[i].DisplacedTake)
	}
	cur, err := f.svc.Current(ctx, midShift.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, evs[3].Member, cur.Member, "the last take wins")
}

func TestPageTargets(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	pt, err := f.svc.PageTargets(ctx, midShift)
	require.NoError(t, err)
	require.Equal(t, oncall.PageTargets{OnCall: bob, Next: carol}, pt)

	// carol, who is next, takes the pager early: the page goes past her.
	_, err = f.svc.Take(ctx, carol, midShift)
	require.NoError(t, err)
	pt, err = f.svc.PageTargets(ctx, midShift.Add(time.Minute))
	require.NoError(t, err)
	require.Equal(t, oncall.PageTargets{OnCall: carol, Next: dave}, pt)

	alone := f.with(t, func(c *oncall.Config) { c.Rotation = []oncall.Member{alice} })
	pt, err = alone.PageTargets(ctx, midShift)
	require.NoError(t, err)
	require.Equal(t, oncall.PageTargets{OnCall: alice}, pt, "nobody else to page")
}

// TestPageFor: a case nobody took pages the next expert after the holder,
// or the holder when the pager changed hands since the case opened (at the
// weekly hand-over, or by a take).
func TestPageFor(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	p, err := f.svc.PageFor(ctx, midShift, midShift.Add(15*time.Minute))
	require.NoError(t, err)
	require.Equal(t, oncall.Page{Member: carol}, p, "bob was told: carol, next, is paged")

	p, err = f.svc.PageFor(ctx, shiftEnd.Add(-5*time.Minute), shiftEnd.Add(10*time.Minute))
	require.NoError(t, err)
	require.Equal(t, oncall.Page{Member: carol, Holder: true}, p, "bob was told; carol holds the pager now")

	_, err = f.svc.Take(ctx, dave, midShift.Add(20*time.Minute))
	require.NoError(t, err)
	p, err = f.svc.PageFor(ctx, midShift, midShift.Add(30*time.Minute))
	require.NoError(t, err)
	require.Equal(t, oncall.Page{Member: dave, Holder: true}, p, "dave took the pager after bob was told")
}

func TestNoRotation(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	svc, err := oncall.New(pool, oncall.Config{}, nil, nil)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = svc.Current(ctx, midShift)
	require.ErrorIs(t, err, oncall.ErrNoRotation)
	_, err = svc.Take(ctx, alice, midShift)
	require.ErrorIs(t, err, oncall.ErrNoRotation)
	_, err = svc.PageTargets(ctx, midShift)
	require.ErrorIs(t, err, oncall.ErrNoRotation)
	require.Equal(t, oncall.DefaultPageAfter, svc.PageAfter())
}

func TestNewRefusesABadConfig(t *testing.T) {
	t.Parallel()
	_, err := oncall.New(nil, oncall.Config{}, nil, nil)
	require.ErrorContains(t, err, "needs a database pool")
	pool := pgtest.New(t)
	_, err = oncall.New(pool, oncall.Config{Rotation: []oncall.Member{alice}}, nil, nil)
	require.ErrorContains(t, err, "oncall config: oncall.handover is missing")
}
