package casework_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

func refsOf(cs []casework.Case) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Ref)
	}
	return out
}

// TestListPages: a More button walks a list page by page with the page
// token: every case once, in the order of the first page, even when time
// passes (cases become at risk) and new cases arrive in between.
func TestListPages(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.CreditsPerQuarter, c.CreditsCap = 40, 40 })
	ctx := context.Background()
	prios := []casework.Priority{casework.PriorityHigh, casework.PriorityMedium, casework.PriorityLow}
	for i := range 25 {
		req := f.openReq("contoso")
		req.Priority = prios[i%3]
		_, _, err := f.svc.Open(ctx, req)
		require.NoError(t, err)
		if i%4 == 0 {
			f.clock.Advance(10 * time.Minute) // some share a due time, some do not
		}
	}
	for range 3 {
		f.open(t, "fabrikam")
	}
	all := casework.AllOrgs()
	open := casework.ListFilter{Org: "contoso", Statuses: casework.OpenStatuses(), Limit: casework.MaxPageSize}
	whole, err := f.svc.List(ctx, all, open)
	require.NoError(t, err)
	require.Len(t, whole.Cases, 25)
	require.Zero(t, whole.Remaining)
	require.Empty(t, whole.Next)
	want := refsOf(whole.Cases)
	require.True(t, whole.Cases[0].AtRisk, "the first high cases are past 75%% of their hour")

	open.Limit = 10
	first, err := f.svc.List(ctx, all, open)
	require.NoError(t, err)
	require.Equal(t, want[:10], refsOf(first.Cases))
	require.Equal(t, 25, first.Total)
	require.Equal(t, 15, first.Remaining)
	require.NotEmpty(t, first.Next)
	require.Less(t, len(first.Next), 60, "fits in a button value with room to spare")

	// Time passes (more cases are at risk now) and a new case arrives
	// before More is pressed.
	f.clock.Advance(40 * time.Minute)
	late := f.openReq("contoso")
	late.Priority = casework.PriorityLow
	_, _, err = f.svc.Open(ctx, late)
	require.NoError(t, err)
	// And a case further down is withdrawn: it leaves the list, and no other
	// case moves up past the page boundary or is skipped.
	gone := want[22]
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: gone, To: casework.StatusWithdrawn, Actor: requester("contoso", "U-analyst")})
	require.NoError(t, err)
	open.PageToken = first.Next
	second, err := f.svc.List(ctx, all, open)
	require.NoError(t, err)
	require.Equal(t, want[10:20], refsOf(second.Cases), "the order of the first page")
	require.Equal(t, 25, second.Total)
	open.PageToken = second.Next
	third, err := f.svc.List(ctx, all, open)
	require.NoError(t, err)
	seen := append(append(refsOf(first.Cases), refsOf(second.Cases)...), refsOf(third.Cases)...)
	require.Equal(t, append(append([]string{}, want[:22]...), want[23:]...), seen[:24], "every case once, none skipped")
	require.Len(t, seen, 25, "the new case comes last: it is due after all the others")
	require.Zero(t, third.Remaining)
	require.Empty(t, third.Next)

	// A member continuing a manager's list still sees their own org only.
	mgr := casework.ListFilter{Statuses: casework.OpenStatuses(), Limit: 5}
	p, err := f.svc.List(ctx, all, mgr)
	require.NoError(t, err)
	mgr.PageToken = p.Next
	member, err := f.svc.List(ctx, casework.OrgViewer("fabrikam"), mgr)
	require.NoError(t, err)
	for _, c := range member.Cases {
		require.Equal(t, "fabrikam", c.Org)
	}

	for name, bad := range map[string]casework.ListFilter{
		"another filter's token": {Org: "contoso", Breaching: true, PageToken: first.Next},
		"malformed":              {PageToken: "1.x.y"},
		"broken number":          {Org: "contoso", Statuses: casework.OpenStatuses(), PageToken: first.Next[:len(first.Next)-1] + "!"},
		"token and offset":       {Org: "contoso", Statuses: casework.OpenStatuses(), PageToken: first.Next, Offset: 3},
	} {
		_, err := f.svc.List(ctx, all, bad)
		require.ErrorIs(t, err, casework.ErrInvalid, name)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.CreditsPerQuarter, c.CreditsCap = 20, 20 })
	ctx := context.Background()
	low := f.openReq("contoso")
	low.Priority = casework.PriorityLow
	lowCase, _, err := f.svc.Open(ctx, low)
	require.NoError(t, err)
	high := f.open(t, "contoso") // high, 1 h first response
	f.clock.Advance(50 * time.Minute)
	fresh := f.open(t, "contoso")
	mine := f.into(t, "fabrikam", casework.StatusInProgress)
	done := f.into(t, "contoso", casework.StatusConcluded)

	page, err := f.svc.List(ctx, casework.AllOrgs(), casework.ListFilter{})
	require.NoError(t, err)
	require.Equal(t, 5, page.Total)
	var order []string
	for _, c := range page.Cases {
		order = append(order, c.Ref)
	}
	require.Equal(t, []string{high.Ref, fresh.Ref, mine.Ref, lowCase.Ref, done.Ref}, order,
		"at risk first, then soonest due, finished last")
	require.True(t, page.Cases[0].AtRisk)

	page, err = f.svc.List(ctx, casework.AllOrgs(), casework.ListFilter{Breaching: true})
	require.NoError(t, err)
	require.Equal(t, 1, page.Total)
	require.Equal(t, high.Ref, page.Cases[0].Ref)

	page, err = f.svc.List(ctx, casework.OrgViewer("contoso"), casework.ListFilter{Statuses: casework.OpenStatuses(), Limit: 2, Offset: 1})
	require.NoError(t, err)
	require.Equal(t, 3, page.Total)
	require.Len(t, page.Cases, 2)
	require.Equal(t, fresh.Ref, page.Cases[0].Ref)

	page, err = f.svc.List(ctx, casework.AllOrgs(), casework.ListFilter{Assignee: "U-expert", Statuses: casework.OpenStatuses()})
	require.NoError(t, err)
	require.Equal(t, 1, page.Total)
	require.Equal(t, mine.Ref, page.Cases[0].Ref)
}

// TestListByPriority: the web tracker's priority filter keeps the cases of
// the priorities asked for, pages with its own token (another filter's is
// refused), and refuses an unknown priority.
func TestListByPriority(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	want := map[casework.Priority][]string{}
	for i, p := range []casework.Priority{casework.PriorityHigh, casework.PriorityLow, casework.PriorityHigh, casework.PriorityMedium} {
		req := f.openReq("contoso")
		req.Priority = p
		c, _, err := f.svc.Open(ctx, req)
		require.NoError(t, err, i)
		want[p] = append(want[p], c.Ref)
	}
	high := casework.ListFilter{Priorities: []casework.Priority{casework.PriorityHigh}, Limit: 1}
	page, err := f.svc.List(ctx, casework.AllOrgs(), high)
	require.NoError(t, err)
	require.Equal(t, 2, page.Total)
	got := refsOf(page.Cases)
	high.PageToken = page.Next
	page, err = f.svc.List(ctx, casework.AllOrgs(), high)
	require.NoError(t, err)
	require.ElementsMatch(t, want[casework.PriorityHigh], append(got, refsOf(page.Cases)...))

	both := casework.ListFilter{Priorities: []casework.Priority{casework.PriorityLow, casework.PriorityMedium}}
	page, err = f.svc.List(ctx, casework.OrgViewer("contoso"), both)
	require.NoError(t, err)
	require.ElementsMatch(t, append(want[casework.PriorityLow], want[casework.PriorityMedium]...), refsOf(page.Cases))

	_, err = f.svc.List(ctx, casework.AllOrgs(), casework.ListFilter{PageToken: high.PageToken})
	require.ErrorIs(t, err, casework.ErrInvalid, "a token of the priority filter does not continue the unfiltered list")
	_, err = f.svc.List(ctx, casework.AllOrgs(), casework.ListFilter{Priorities: []casework.Priority{"urgent"}})
	require.ErrorIs(t, err, casework.ErrInvalid)
}
