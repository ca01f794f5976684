package casework_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	mine := f.into(t, "contoso", casework.StatusMoreInfoNeeded)
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
