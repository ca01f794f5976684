package casework_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

// TestPriorityChosenAtOpen: a priority chosen in the ask form sets the SLA
// targets and is stored with who chose it; a derived one names nobody.
func TestPriorityChosenAtOpen(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	req := f.openReq("contoso") // a high-severity alert: high by default
	req.Priority, req.PriorityBy = casework.PriorityLow, requester("contoso", "U-analyst").Person
	c, _, err := f.svc.Open(ctx, req)
	require.NoError(t, err)
	require.Equal(t, casework.PriorityLow, c.Priority)
	require.Equal(t, "U-analyst", c.PriorityBy.UserID)
	require.NotNil(t, c.DueAt)
	require.Equal(t, t0.Add(24*time.Hour), c.DueAt.UTC(), "the low first-response target")
	tl, err := f.svc.Timeline(ctx, casework.AllOrgs(), c.Ref)
	require.NoError(t, err)
	var opened casework.OpenedEvent
	require.NoError(t, json.Unmarshal(tl[0].Detail, &opened))
	require.NotNil(t, opened.PriorityBy, "who chose it is on the timeline")
	require.Equal(t, "U-analyst", opened.PriorityBy.UserID)

	d := f.open(t, "contoso")
	require.Equal(t, casework.PriorityHigh, d.Priority)
	require.True(t, d.PriorityBy.IsZero(), "derived: nobody chose it")
}

// TestManagerApprovesBeyondCredits: at zero credits a case opens only with
// a manager's approval, uses no credit, and the approval is on its timeline.
func TestManagerApprovesBeyondCredits(t *testing.T) {
	t.Parallel()
	zero := 0
	f := setup(t, func(c *casework.Config) {
		c.Orgs = []casework.Org{{ID: "contoso", CreditsPerQuarter: &zero}}
	})
	ctx := context.Background()
	_, _, err := f.svc.Open(ctx, f.openReq("contoso"))
	var nc *casework.NoCreditsError
	require.True(t, errors.As(err, &nc), "no credits: %v", err)
	require.NotContains(t, err.Error(), "contoso", "the sentence names no internal org id")

	req := f.openReq("contoso")
	exp := expert("U-expert")
	req.ApprovedBy = &exp
	_, _, err = f.svc.Open(ctx, req)
	require.ErrorIs(t, err, casework.ErrInvalid, "only a manager approves")

	mgr := manager("U-manager")
	req.ApprovedBy = &mgr
	c, created, err := f.svc.Open(ctx, req)
	require.NoError(t, err)
	require.True(t, created)
	require.False(t, c.CreditUsed)
	bal, err := f.svc.Credits(ctx, casework.OrgViewer("contoso"), "contoso")
	require.NoError(t, err)
	require.Zero(t, bal.Balance)
	tl, err := f.svc.Timeline(ctx, casework.AllOrgs(), c.Ref)
	require.NoError(t, err)
	var opened casework.OpenedEvent
	require.NoError(t, json.Unmarshal(tl[0].Detail, &opened))
	require.NotNil(t, opened.ApprovedBy)
	require.Equal(t, "U-manager", opened.ApprovedBy.UserID)
	require.Equal(t, 0, f.events(t, c.Ref)[casework.EventCreditsChanged], "no credit used")

	again, created, err := f.svc.Open(ctx, req)
	require.NoError(t, err)
	require.False(t, created, "pressed twice: one case")
	require.Equal(t, c.Ref, again.Ref)
}
