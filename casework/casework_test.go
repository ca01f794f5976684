package casework_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

func TestParseRef(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "EOD-12", want: 12},
		{in: "eod-12", want: 12},
		{in: "12", want: 12},
		{in: " #12 ", want: 12},
		{in: "EOD-0", bad: true},
		{in: "EOD-", bad: true},
		{in: "INC-12", bad: true},
		{in: "", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			n, err := casework.ParseRef(tc.in)
			if tc.bad {
				require.ErrorIs(t, err, casework.ErrInvalid)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, n)
		})
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  casework.Config
		want string
	}{
		{name: "zero but the key is valid", cfg: casework.Config{}},
		{name: "no key", cfg: casework.Config{}, want: "Key is required"},
		{name: "warn fraction", cfg: casework.Config{SLA: casework.SLA{WarnAt: 1.5}}, want: "cases.sla.warn_at 1.5 must be a fraction"},
		{name: "negative target", cfg: casework.Config{SLA: casework.SLA{Low: casework.Target{FirstResponse: -time.Hour}}},
			want: "cases.sla.low: first_response and conclusion must be positive durations"},
		{name: "response after conclusion", cfg: casework.Config{SLA: casework.SLA{High: casework.Target{FirstResponse: 48 * time.Hour}}},
			want: "cases.sla.high.first_response (48h0m0s) must not exceed conclusion (24h0m0s)"},
		{name: "cap below allowance", cfg: casework.Config{CreditsPerQuarter: 30}, want: "cases.credits_rollover_max 20 is below the default credits_per_quarter 30"},
		{name: "org allowance above the cap", cfg: casework.Config{Orgs: []casework.Org{{ID: "contoso", CreditsPerQuarter: ptr(21)}}},
			want: "orgs[0] (contoso).credits_per_quarter 21 must be between 0 and cases.credits_rollover_max (20)"},
		{name: "negative reopen window", cfg: casework.Config{ReopenWindow: -time.Hour}, want: "cases.reopen_window must not be negative"},
		{name: "sweep too often", cfg: casework.Config{SweepEvery: time.Millisecond}, want: "cases.sla.check_interval 1ms is too short"},
		{name: "timeline check too often", cfg: casework.Config{TimelineCheckEvery: time.Millisecond}, want: "TimelineCheckEvery"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.name != "no key" {
				tc.cfg.Key = testKey(t)
			}
			_, err := casework.New(pgtestPoolStub(t), tc.cfg, nil, nil)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestOpenStoresTheOrigin: where the case was asked is written by the
// transaction that opens it, so nothing remains to be written (and to fail)
// after the commit.
func TestOpenStoresTheOrigin(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	req := f.openReq("contoso")
	req.Origin = casework.Place{Platform: "slack", Workspace: "Tcontoso", Channel: "C0CONTOSOIR"}
	c, created, err := f.svc.Open(ctx, req)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, req.Origin, c.Origin)
	require.Equal(t, req.Origin, f.get(t, c.Ref).Origin)
	var payload casework.OpenedEvent
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT payload FROM outbox WHERE stream = $1 AND kind = $2`,
		casework.Stream(c.Ref), casework.EventOpened).Scan(&payload))
	require.Equal(t, &req.Origin, payload.Origin, "the opened event carries it")

	// A retry with the same key (and another origin) changes nothing.
	again := req
	again.Origin.Channel = "C0ELSEWHERE"
	c2, created, err := f.svc.Open(ctx, again)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, c.Ref, c2.Ref)
	require.Equal(t, req.Origin, c2.Origin)

	bad := f.openReq("contoso")
	bad.Origin = casework.Place{Channel: "C1"}
	_, _, err = f.svc.Open(ctx, bad)
	require.ErrorIs(t, err, casework.ErrInvalid)
	require.ErrorContains(t, err, "needs its platform")
}

func TestOpenIsIdempotent(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	req := f.openReq("contoso")
	first, created, err := f.svc.Open(ctx, req)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, casework.StatusNew, first.Status)
	require.Equal(t, casework.PriorityHigh, first.Priority, "a high-severity alert makes a high-priority case")
	require.Equal(t, casework.CategoryAlertInquiry, first.Category)

	// A retried command, and a burst of double clicks at once.
	var wg sync.WaitGroup
	refs := make(chan string, 10)
	for range 10 {
		wg.Go(func() {
			c, created, err := f.svc.Open(ctx, req)
			require.NoError(t, err)
			require.False(t, created)
			refs <- c.Ref
		})
	}
	wg.Wait()
	close(refs)
	for r := range refs {
		require.Equal(t, first.Ref, r)
	}
	require.Equal(t, map[string]int{casework.EventOpened: 1, casework.EventCreditsChanged: 1}, f.events(t, first.Ref))
	bal, err := f.svc.Credits(ctx, casework.OrgViewer("contoso"), "contoso")
	require.NoError(t, err)
	require.Equal(t, 9, bal.Balance, "one credit used, once")

	// The same key in another org is another case.
	req.Org = "fabrikam"
	req.Requester = requester("fabrikam", "U-analyst").Person
	other, created, err := f.svc.Open(ctx, req)
	require.NoError(t, err)
	require.True(t, created)
	require.NotEqual(t, first.Ref, other.Ref)
}

func TestOpenValidates(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, tc := range []struct {
		name string
		mod  func(*casework.OpenRequest)
		want string
	}{
		{"no key", func(r *casework.OpenRequest) { r.Key = "" }, "idempotency key"},
		{"no org", func(r *casework.OpenRequest) { r.Org = "" }, "org"},
		{"empty question", func(r *casework.OpenRequest) { r.Question = "  " }, "question is empty"},
		{"subject without id", func(r *casework.OpenRequest) { r.Subject.ID = "" }, "needs its id"},
		{"bad priority", func(r *casework.OpenRequest) { r.Priority = "urgent" }, "priority"},
		{"bad kind", func(r *casework.OpenRequest) { r.Subject.Kind = "user" }, "subject kind"},
		{"no requester", func(r *casework.OpenRequest) { r.Requester = casework.Person{} }, "requester"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := f.openReq("contoso")
			tc.mod(&req)
			_, _, err := f.svc.Open(context.Background(), req)
			require.ErrorIs(t, err, casework.ErrInvalid)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDerivePriority(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sev  string
		cat  casework.Category
		want casework.Priority
	}{
		{"High", casework.CategoryAlertInquiry, casework.PriorityHigh},
		{"critical", casework.CategoryAlertInquiry, casework.PriorityHigh},
		{"", casework.CategoryDeviceCompromise, casework.PriorityHigh},
		{"medium", casework.CategoryAlertInquiry, casework.PriorityMedium},
		{"", casework.CategoryThreatIntel, casework.PriorityMedium},
		{"informational", casework.CategoryAlertInquiry, casework.PriorityLow},
		{"Low", casework.CategoryOther, casework.PriorityLow},
	} {
		require.Equal(t, tc.want, casework.DerivePriority(casework.Subject{Severity: tc.sev}, tc.cat), "%s/%s", tc.sev, tc.cat)
	}
}

// TestTransitions tries every (from, to, role) and expects exactly the
// transition table: allowed ones change the status, refused ones return a
// *TransitionError with one sentence.
func TestTransitions(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.CreditsPerQuarter, c.CreditsCap = 20, 20 })
	roles := []casework.Role{casework.RoleRequester, casework.RoleExpert, casework.RoleManager, casework.RoleSystem}
	for _, from := range casework.Statuses() {
		for _, to := range casework.Statuses() {
			for _, role := range roles {
				allowed := casework.Allowed(from, to, role)
				name := string(from) + "->" + string(to) + "/" + string(role)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					org := "org-" + name // its own org: its own credits
					c := f.into(t, org, from)
					got, err := f.svc.Transition(context.Background(), casework.TransitionRequest{
						Ref: c.Ref, To: to, Actor: actorFor(role, org), Summary: "it is benign"})
					if allowed {
						require.NoError(t, err)
						require.Equal(t, to, got.Status)
						ev := f.events(t, c.Ref)
						require.Positive(t, ev[casework.EventStatusChanged])
						return
					}
					var te *casework.TransitionError
					require.ErrorAs(t, err, &te, "want a refusal, got %v", err)
					require.Equal(t, c.Ref, te.Ref)
					require.Equal(t, from, te.From)
					msg := err.Error()
					require.True(t, strings.HasPrefix(msg, c.Ref) || strings.HasPrefix(msg, "a ") || strings.HasPrefix(msg, "an "), msg)
					require.NotContains(t, msg, "\n")
					require.Equal(t, 1, strings.Count(msg, c.Ref), "one sentence naming the case: %q", msg)
					after, err := f.svc.Get(context.Background(), casework.AllOrgs(), c.Ref)
					require.NoError(t, err)
					require.Equal(t, from, after.Status, "a refused transition changes nothing")
				})
			}
		}
	}
}

func TestTransitionMessages(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	concluded := f.into(t, "contoso", casework.StatusConcluded)
	fresh := f.into(t, "contoso", casework.StatusNew)
	for _, tc := range []struct {
		name string
		req  casework.TransitionRequest
		want string
	}{
		{"concluded", casework.TransitionRequest{Ref: concluded.Ref, To: casework.StatusNeedsMoreTime, Actor: expert("U-e")},
			concluded.Ref + " is already concluded; use Reopen"},
		{"reopen by expert", casework.TransitionRequest{Ref: concluded.Ref, To: casework.StatusInProgress, Actor: expert("U-e")},
			"an expert cannot reopen " + concluded.Ref + "; only a requester or a manager can"},
		{"conclude by requester", casework.TransitionRequest{Ref: fresh.Ref, To: casework.StatusConcluded, Actor: requester("contoso", "U-a"), Summary: "x"},
			fresh.Ref + " has not been taken yet; an expert must take it first"},
		{"close before conclusion", casework.TransitionRequest{Ref: fresh.Ref, To: casework.StatusClosed, Actor: requester("contoso", "U-a")},
			fresh.Ref + " can be closed only once it is concluded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Transition(ctx, tc.req)
			require.EqualError(t, err, tc.want)
		})
	}

	// Concluding needs a summary.
	ip := f.into(t, "contoso", casework.StatusInProgress)
	_, err := f.svc.Transition(ctx, casework.TransitionRequest{Ref: ip.Ref, To: casework.StatusConcluded, Actor: expert("U-e")})
	require.ErrorIs(t, err, casework.ErrInvalid)

	// Reopen works inside the window and not after it.
	c, err := f.svc.Transition(ctx, casework.TransitionRequest{Ref: concluded.Ref, To: casework.StatusInProgress, Actor: requester("contoso", "U-analyst")})
	require.NoError(t, err)
	require.Equal(t, casework.StatusInProgress, c.Status)
	require.Equal(t, "U-expert", c.Assignee.UserID, "a reopened case stays with its expert")
	closed := f.into(t, "contoso", casework.StatusClosed)
	f.clock.Advance(15 * 24 * time.Hour)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: closed.Ref, To: casework.StatusInProgress, Actor: requester("contoso", "U-analyst")})
	require.EqualError(t, err, closed.Ref+" was closed more than 14 days ago and can no longer be reopened; open a new case")
}

// TestOnlyTheRequesterEndsACase: a colleague in the same org sees a case but
// may not withdraw, close or reopen it; the requester may do all three, a
// manager may close and reopen but not withdraw.
func TestOnlyTheRequesterEndsACase(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	colleague := requester("contoso", "U-colleague")
	own := requester("contoso", "U-analyst")
	move := func(c *casework.Case, to casework.Status, a casework.Actor) error {
		_, err := f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: to, Actor: a, Summary: "benign"})
		return err
	}
	refused := func(err error, want string) {
		t.Helper()
		var te *casework.TransitionError
		require.ErrorAs(t, err, &te)
		require.Equal(t, want, err.Error())
	}

	for _, st := range []casework.Status{casework.StatusNew, casework.StatusInProgress, casework.StatusMoreInfoNeeded} {
		c := f.into(t, "contoso", st)
		refused(move(c, casework.StatusWithdrawn, colleague), "only U-analyst, who asked, can withdraw "+c.Ref)
		refused(move(c, casework.StatusWithdrawn, manager("U-manager")), "a manager cannot withdraw "+c.Ref+"; only a requester can")
		require.Equal(t, st, f.get(t, c.Ref).Status, "refusals change nothing")
		require.NoError(t, move(c, casework.StatusWithdrawn, own))
		require.Equal(t, casework.StatusWithdrawn, f.get(t, c.Ref).Status)
	}

	c := f.into(t, "contoso", casework.StatusConcluded)
	refused(move(c, casework.StatusClosed, colleague), "only U-analyst, who asked, or a manager can close "+c.Ref)
	require.NoError(t, move(c, casework.StatusClosed, manager("U-manager")))
	refused(move(c, casework.StatusInProgress, colleague), "only U-analyst, who asked, or a manager can reopen "+c.Ref)
	require.NoError(t, move(c, casework.StatusInProgress, manager("U-manager")))
	require.NoError(t, move(c, casework.StatusConcluded, expert("U-expert")))
	require.NoError(t, move(c, casework.StatusClosed, own))
	require.NoError(t, move(c, casework.StatusInProgress, own))
	require.Equal(t, casework.StatusInProgress, f.get(t, c.Ref).Status)

	// The same user id in another workspace is someone else.
	c = f.into(t, "contoso", casework.StatusNew)
	lookalike := own
	lookalike.Workspace = "T-other"
	refused(move(c, casework.StatusWithdrawn, lookalike), "only U-analyst, who asked, can withdraw "+c.Ref)
}

func TestConcurrentTakeHasOneWinner(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := f.open(t, "contoso")
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	var losers []*casework.AlreadyTakenError
	for i := range n {
		wg.Go(func() {
			who := expert("U-expert-" + string(rune('a'+i)))
			got, err := f.svc.Take(ctx, c.Ref, who)
			mu.Lock()
			defer mu.Unlock()
			var at *casework.AlreadyTakenError
			switch {
			case err == nil:
				require.Equal(t, who.UserID, got.Assignee.UserID)
				winners = append(winners, who.UserID)
			case errors.As(err, &at):
				losers = append(losers, at)
			default:
				t.Errorf("take: %v", err)
			}
		})
	}
	wg.Wait()
	require.Len(t, winners, 1)
	require.Len(t, losers, n-1)
	for _, l := range losers {
		require.Equal(t, winners[0], l.Holder.UserID, "the loser learns who has it")
		require.Equal(t, c.Ref+" is already taken by "+winners[0], l.Error())
	}
	got, err := f.svc.Get(ctx, casework.AllOrgs(), c.Ref)
	require.NoError(t, err)
	require.Equal(t, casework.StatusInProgress, got.Status)
	require.Equal(t, 1, f.events(t, c.Ref)[casework.EventAssigned])

	// Taking again by the holder is a no-op; a manager may reassign.
	_, err = f.svc.Take(ctx, c.Ref, expert(winners[0]))
	require.NoError(t, err)
	re, err := f.svc.Assign(ctx, c.Ref, manager("U-boss"), expert("U-other").Person)
	require.NoError(t, err)
	require.Equal(t, "U-other", re.Assignee.UserID)
	require.Equal(t, 2, f.events(t, c.Ref)[casework.EventAssigned])
	_, err = f.svc.Assign(ctx, c.Ref, requester("contoso", "U-a"), expert("U-x").Person)
	var te *casework.TransitionError
	require.ErrorAs(t, err, &te)
}

func TestTakeAndAssignByRole(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.CreditsPerQuarter, c.CreditsCap = 20, 20 })
	ctx := context.Background()
	roles := []casework.Role{casework.RoleRequester, casework.RoleExpert, casework.RoleManager, casework.RoleSystem}
	for _, role := range roles {
		allowed := role == casework.RoleExpert || role == casework.RoleManager
		t.Run("take/"+string(role), func(t *testing.T) {
			t.Parallel()
			c := f.open(t, "contoso")
			got, err := f.svc.Take(ctx, c.Ref, actorFor(role, "contoso"))
			if !allowed {
				var te *casework.TransitionError
				require.ErrorAs(t, err, &te)
				require.Contains(t, err.Error(), "cannot take "+c.Ref)
				return
			}
			require.NoError(t, err)
			require.Equal(t, casework.StatusInProgress, got.Status)
			require.NotNil(t, got.TakenAt)
		})
		t.Run("assign/"+string(role), func(t *testing.T) {
			t.Parallel()
			c := f.open(t, "contoso")
			got, err := f.svc.Assign(ctx, c.Ref, actorFor(role, "contoso"), expert("U-assignee").Person)
			if !allowed {
				var te *casework.TransitionError
				require.ErrorAs(t, err, &te)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "U-assignee", got.Assignee.UserID)
			require.Equal(t, casework.StatusInProgress, got.Status)
		})
	}
	done := f.into(t, "contoso", casework.StatusConcluded)
	_, err := f.svc.Take(ctx, done.Ref, expert("U-late"))
	require.EqualError(t, err, done.Ref+" is already concluded; use Reopen")
}

// TestCategoryFollowsTheSubject: casework gives a case its category from
// its subject (the bot passes none); a consult about an incident is a
// question about a notification, whoever opens it.
func TestCategoryFollowsTheSubject(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for kind, want := range map[casework.SubjectKind]casework.Category{
		casework.SubjectAlert:    casework.CategoryAlertInquiry,
		casework.SubjectDevice:   casework.CategoryDeviceCompromise,
		casework.SubjectFile:     casework.CategoryThreatIntel,
		casework.SubjectIncident: casework.CategoryNotificationQuestion,
		casework.SubjectNone:     casework.CategoryOther,
	} {
		req := f.openReq("contoso")
		req.Subject = casework.Subject{Kind: kind}
		if kind != casework.SubjectNone {
			req.Subject.ID = "x1"
		}
		c, _, err := f.svc.Open(context.Background(), req)
		require.NoError(t, err, kind)
		require.Equal(t, want, c.Category, kind)
		require.Equal(t, want, casework.CategoryFor(kind), kind)
	}
}
