package casework_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

func TestCredits(t *testing.T) {
	t.Parallel()
	f := setup(t) // defaults: 10 a quarter, 20 at most
	ctx := context.Background()
	v := casework.OrgViewer("contoso")
	var cases []*casework.Case
	for range 10 {
		cases = append(cases, f.open(t, "contoso"))
	}
	_, _, err := f.svc.Open(ctx, f.openReq("contoso"))
	var nc *casework.NoCreditsError
	require.ErrorAs(t, err, &nc)
	require.Equal(t, 0, nc.Balance)
	require.Equal(t, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), nc.ResetsAt)
	require.Equal(t, 10, nc.NextBalance)
	require.Equal(t, "There are no expert credits left this quarter; 10 more arrive on 1 April 2026", err.Error())

	// Withdrawing before take refunds; after take it does not.
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: cases[0].Ref, To: casework.StatusWithdrawn, Actor: requester("contoso", "U-analyst")})
	require.NoError(t, err)
	bal, err := f.svc.Credits(ctx, v, "contoso")
	require.NoError(t, err)
	require.Equal(t, 1, bal.Balance)
	require.Equal(t, 1, f.events(t, cases[0].Ref)[casework.EventCreditsChanged]-1, "used, then refunded")
	_, err = f.svc.Take(ctx, cases[1].Ref, expert("U-e"))
	require.NoError(t, err)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: cases[1].Ref, To: casework.StatusWithdrawn, Actor: requester("contoso", "U-analyst")})
	require.NoError(t, err)
	bal, err = f.svc.Credits(ctx, v, "contoso")
	require.NoError(t, err)
	require.Equal(t, 1, bal.Balance, "no refund once an expert took it")

	// Use 5 of the 10 in all; next quarter: 5 + 10 = 15; the one after: capped at 20.
	for range 1 {
		f.open(t, "contoso")
	}
	bal, err = f.svc.Credits(ctx, v, "contoso")
	require.NoError(t, err)
	require.Equal(t, 0, bal.Balance)
	f.clock.Set(time.Date(2026, 4, 1, 0, 0, 1, 0, time.UTC))
	bal, err = f.svc.Credits(ctx, v, "contoso")
	require.NoError(t, err)
	require.Equal(t, 10, bal.Balance)
	for range 5 {
		f.open(t, "contoso")
	}
	f.clock.Set(time.Date(2026, 7, 15, 0, 0, 0, 0, time.UTC))
	bal, err = f.svc.Credits(ctx, v, "contoso")
	require.NoError(t, err)
	require.Equal(t, 15, bal.Balance, "5 unused roll over")
	require.Equal(t, 20, bal.NextBalance)
	f.clock.Set(time.Date(2026, 10, 2, 0, 0, 0, 0, time.UTC))
	bal, err = f.svc.Credits(ctx, v, "contoso")
	require.NoError(t, err)
	require.Equal(t, 20, bal.Balance, "rollover is capped at 20")
	require.Equal(t, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), bal.ResetsAt)
	f.open(t, "contoso")
	bal, err = f.svc.Credits(ctx, v, "contoso")
	require.NoError(t, err)
	require.Equal(t, 19, bal.Balance, "the stored balance was brought forward before use")

	_, err = f.svc.Credits(ctx, casework.OrgViewer("fabrikam"), "contoso")
	require.ErrorIs(t, err, casework.ErrNotFound, "an org reads only its own credits")
}

// TestOrgAllowance: an org's own credits_per_quarter is its allowance;
// the others get the default.
func TestOrgAllowance(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) {
		c.Orgs = []casework.Org{{ID: "contoso", CreditsPerQuarter: ptr(3)}, {ID: "fabrikam"}}
	})
	ctx := context.Background()
	for org, want := range map[string]int{"contoso": 3, "fabrikam": casework.DefaultCreditsPerQuarter, "northwind": casework.DefaultCreditsPerQuarter} {
		bal, err := f.svc.Credits(ctx, casework.OrgViewer(org), org)
		require.NoError(t, err, org)
		require.Equal(t, want, bal.PerQuarter, org)
		require.Equal(t, want, bal.Balance, org)
	}
	for range 3 {
		f.open(t, "contoso")
	}
	_, _, err := f.svc.Open(ctx, f.openReq("contoso"))
	var nc *casework.NoCreditsError
	require.ErrorAs(t, err, &nc, "the fourth case of the quarter")
}

func TestConcurrentOpensNeverOverspend(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	opened, refused := 0, 0
	for range 15 {
		wg.Go(func() {
			_, _, err := f.svc.Open(ctx, f.openReq("contoso"))
			mu.Lock()
			defer mu.Unlock()
			var nc *casework.NoCreditsError
			switch {
			case err == nil:
				opened++
			case errors.As(err, &nc):
				refused++
			default:
				t.Errorf("open: %v", err)
			}
		})
	}
	wg.Wait()
	require.Equal(t, 10, opened)
	require.Equal(t, 5, refused)
	bal, err := f.svc.Credits(ctx, casework.OrgViewer("contoso"), "contoso")
	require.NoError(t, err)
	require.Zero(t, bal.Balance)
}

// TestCreditQuartersFollowTheTimeZone: with the service's timezone in New
// York, the quarter's credits arrive at midnight there, as the reports'
// quarters start. A case opened on 31 December at 20:00 (01:00 UTC on 1
// January) drew on the new quarter's allowance, and the fourth quarter's
// report showed more credits used than it had.
func TestCreditQuartersFollowTheTimeZone(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	f := setup(t, func(c *casework.Config) { c.Location, c.Orgs = ny, orgsOf("contoso") })
	ctx := context.Background()
	f.clock.Set(time.Date(2025, 12, 20, 10, 0, 0, 0, ny))
	for range 10 {
		f.open(t, "contoso")
	}
	f.clock.Set(time.Date(2025, 12, 31, 20, 0, 0, 0, ny))
	_, _, err = f.svc.Open(ctx, f.openReq("contoso"))
	var nc *casework.NoCreditsError
	require.ErrorAs(t, err, &nc, "still the fourth quarter in New York")
	require.True(t, nc.ResetsAt.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, ny)), "%s", nc.ResetsAt)
	bal, err := f.svc.Credits(ctx, casework.OrgViewer("contoso"), "contoso")
	require.NoError(t, err)
	require.Zero(t, bal.Balance)

	f.clock.Set(time.Date(2026, 1, 1, 0, 0, 1, 0, ny))
	f.open(t, "contoso")
	bal, err = f.svc.Credits(ctx, casework.OrgViewer("contoso"), "contoso")
	require.NoError(t, err)
	require.Equal(t, 9, bal.Balance)

	rep, err := f.svc.Report(ctx, casework.OrgViewer("contoso"), casework.ReportRequest{Period: casework.PeriodQuarter, Location: ny,
		At: time.Date(2025, 11, 1, 0, 0, 0, 0, ny)})
	require.NoError(t, err)
	require.Equal(t, 10, rep.Total.Credits.Used, "the fourth quarter used its 10, no more")
}
