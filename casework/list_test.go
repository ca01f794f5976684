package casework_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

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
