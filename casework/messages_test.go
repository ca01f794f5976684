package casework_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

func TestMessages(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := f.into(t, "contoso", casework.StatusInProgress)

	// An expert asks for more information; the requester's answer resumes the case.
	_, err := f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusMoreInfoNeeded, Actor: expert("U-expert"), Note: "need the process tree"})
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
	require.EqualError(t, err, closed.Ref+" is closed; its requester or a manager can reopen it to continue the conversation")
}
