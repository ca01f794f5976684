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
	require.Equal(t, "contoso has no expert credits left this quarter (balance 0); 10 more arrive on 1 April 2026", err.Error())

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

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	mine := f.into(t, "contoso", casework.StatusMoreInfoNeeded)
	require.NoError(t, f.svc.SetAnchor(ctx, mine.Ref, casework.AnchorRequester,
		casework.ChatRef{Platform: "slack", Workspace: "Tcontoso", Channel: "C1", Message: "111.1"}))
	other := casework.OrgViewer("fabrikam")
	missing := "EOD-999999"

	_, errOther := f.svc.Get(ctx, other, mine.Ref)
	_, errMissing := f.svc.Get(ctx, other, missing)
	require.ErrorIs(t, errOther, casework.ErrNotFound)
	require.ErrorIs(t, errMissing, casework.ErrNotFound)
	require.Equal(t, strings.Replace(errMissing.Error(), missing, mine.Ref, 1), errOther.Error(), "indistinguishable from a missing case")

	for name, call := range map[string]func() error{
		"sla":      func() error { _, err := f.svc.SLA(ctx, other, mine.Ref); return err },
		"timeline": func() error { _, err := f.svc.Timeline(ctx, other, mine.Ref); return err },
		"verify":   func() error { return f.svc.VerifyTimeline(ctx, other, mine.Ref) },
		"messages": func() error { _, err := f.svc.Messages(ctx, other, mine.Ref); return err },
		"find":     func() error { _, _, err := f.svc.FindByMessage(ctx, other, "slack", "C1", "111.1"); return err },
		"transition": func() error {
			_, err := f.svc.Transition(ctx, casework.TransitionRequest{Ref: mine.Ref, To: casework.StatusWithdrawn, Actor: requester("fabrikam", "U-x")})
			return err
		},
		"message": func() error {
			_, err := f.svc.AddMessage(ctx, casework.MessageRequest{Ref: mine.Ref, Actor: requester("fabrikam", "U-x"), Text: "hi"})
			return err
		},
		"zero viewer": func() error { _, err := f.svc.Get(ctx, casework.Viewer{}, mine.Ref); return err },
	} {
		err := call()
		require.Error(t, err, name)
		if name != "zero viewer" {
			require.ErrorIs(t, err, casework.ErrNotFound, name)
		}
	}
	page, err := f.svc.List(ctx, other, casework.ListFilter{})
	require.NoError(t, err)
	require.Zero(t, page.Total)
	page, err = f.svc.List(ctx, other, casework.ListFilter{Org: "contoso"})
	require.NoError(t, err)
	require.Zero(t, page.Total, "an org viewer cannot widen its scope")

	// Its own org and experts see it.
	for _, v := range []casework.Viewer{casework.OrgViewer("contoso"), casework.AllOrgs()} {
		got, err := f.svc.Get(ctx, v, strings.ToLower(mine.Ref))
		require.NoError(t, err)
		require.Equal(t, mine.Ref, got.Ref)
	}
}

func TestMessagesAndAnchors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := f.into(t, "contoso", casework.StatusInProgress)
	desk := casework.ChatRef{Platform: "slack", Workspace: "TDESK", Channel: "CDESK", Message: "200.1"}
	recv := casework.ChatRef{Platform: "discord", Workspace: "1000", Channel: "2000", Message: "3000"}
	require.NoError(t, f.svc.SetAnchor(ctx, c.Ref, casework.AnchorDesk, desk))
	require.NoError(t, f.svc.SetAnchor(ctx, c.Ref, casework.AnchorRequester, recv))

	got, kind, err := f.svc.FindByMessage(ctx, casework.AllOrgs(), "slack", "CDESK", "200.1")
	require.NoError(t, err)
	require.Equal(t, c.Ref, got.Ref)
	require.Equal(t, casework.AnchorDesk, kind)
	require.Equal(t, &desk, got.DeskCard)
	require.Equal(t, &recv, got.RequesterThread)
	_, kind, err = f.svc.FindByMessage(ctx, casework.OrgViewer("contoso"), "discord", "2000", "3000")
	require.NoError(t, err)
	require.Equal(t, casework.AnchorRequester, kind)
	_, _, err = f.svc.FindByMessage(ctx, casework.AllOrgs(), "slack", "CDESK", "nope")
	require.ErrorIs(t, err, casework.ErrNotFound)
	other := f.open(t, "contoso")
	require.ErrorIs(t, f.svc.SetAnchor(ctx, other.Ref, casework.AnchorDesk, desk), casework.ErrInvalid, "one message anchors one case")

	// An expert asks for more information; the requester's answer resumes the case.
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusMoreInfoNeeded, Actor: expert("U-expert"), Note: "need the process tree"})
	require.NoError(t, err)
	note, err := f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: expert("U-expert"), Text: "looks like PsExec", Internal: true})
	require.NoError(t, err)
	require.True(t, note.Internal)
	reply := casework.MessageRequest{Ref: c.Ref, Actor: requester("contoso", "U-analyst"), Text: "here it is",
		Chat: casework.ChatRef{Platform: "discord", Workspace: "1000", Channel: "2001", Message: "3001"}}
	m1, err := f.svc.AddMessage(ctx, reply)
	require.NoError(t, err)
	require.Equal(t, casework.SideRequester, m1.Side)
	m2, err := f.svc.AddMessage(ctx, reply)
	require.NoError(t, err)
	require.Equal(t, m1.ID, m2.ID, "a redelivered reply is stored once")
	now, err := f.svc.Get(ctx, casework.AllOrgs(), c.Ref)
	require.NoError(t, err)
	require.Equal(t, casework.StatusInProgress, now.Status, "the requester's answer resumes the clock")

	ev := f.events(t, c.Ref)
	require.Equal(t, 1, ev[casework.EventMessageAdded], "internal notes never reach the outbox; redelivery adds nothing")
	all, err := f.svc.Messages(ctx, casework.AllOrgs(), c.Ref)
	require.NoError(t, err)
	require.Len(t, all, 2)
	theirs, err := f.svc.Messages(ctx, casework.OrgViewer("contoso"), c.Ref)
	require.NoError(t, err)
	require.Len(t, theirs, 1, "org members never see internal notes")
	tl, err := f.svc.Timeline(ctx, casework.OrgViewer("contoso"), c.Ref)
	require.NoError(t, err)
	for _, e := range tl {
		require.NotContains(t, string(e.Detail), "PsExec")
	}

	_, err = f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: requester("contoso", "U-a"), Text: "x", Internal: true})
	require.ErrorIs(t, err, casework.ErrInvalid)
	closed := f.into(t, "contoso", casework.StatusClosed)
	_, err = f.svc.AddMessage(ctx, casework.MessageRequest{Ref: closed.Ref, Actor: requester("contoso", "U-a"), Text: "thanks"})
	require.EqualError(t, err, closed.Ref+" is closed; reopen it to continue the conversation")
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
