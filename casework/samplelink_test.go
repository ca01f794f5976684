package casework_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

// TestIssueUploadLinkOnce: one key issues one link, whatever the number of
// calls, concurrent or from another replica; the token is never stored in
// clear; a key is bound to its case.
func TestIssueUploadLinkOnce(t *testing.T) {
	t.Parallel()
	f := sampleSetup(t)
	ctx := context.Background()
	c := f.into(t, "contoso", casework.StatusFileSampleNeeded)
	const key = "outbox:42"

	first, err := f.svc.IssueUploadLinkOnce(ctx, c.Ref, casework.System(), key)
	require.NoError(t, err)
	require.False(t, first.Repeated)
	_, err = f.svc.UploadLinkInfo(ctx, first.Token)
	require.NoError(t, err, "the link works")

	// Retries, on this replica and on another, at the same time.
	other := f.another(t)
	var wg sync.WaitGroup
	got := make([]*casework.UploadLink, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Go(func() {
			svc := f.svc
			if i%2 == 1 {
				svc = other
			}
			got[i], errs[i] = svc.IssueUploadLinkOnce(ctx, c.Ref, casework.System(), key)
		})
	}
	wg.Wait()
	for i := range got {
		require.NoError(t, errs[i])
		require.True(t, got[i].Repeated)
		require.Equal(t, first.Token, got[i].Token)
		require.Equal(t, first.Link, got[i].Link)
		require.True(t, first.ExpiresAt.Equal(got[i].ExpiresAt))
	}
	require.Equal(t, 1, f.count(t, `SELECT count(*) FROM case_upload_links`))
	issued := 0
	for _, k := range f.kinds(t, c.Ref) {
		if k == casework.EventUploadLinkIssued {
			issued++
		}
	}
	require.Equal(t, 1, issued, "one link on the timeline")

	// The token is nowhere in the database in clear.
	var dump string
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT string_agg(t::text, ' ') FROM case_upload_links t`).Scan(&dump))
	require.NotContains(t, dump, first.Token)
	var sealed []byte
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT token_sealed FROM case_upload_links`).Scan(&sealed))
	require.False(t, bytes.Contains(sealed, []byte(first.Token)))
	for _, k := range []string{"outbox", "case_timeline"} {
		var n int
		require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM `+k+` t WHERE t::text LIKE '%' || $1 || '%'`, first.Token).Scan(&n))
		require.Zero(t, n, k)
	}

	// A used link is given again (the page then says it was used); a new
	// key issues a new link.
	_, err = f.svc.StoreSample(ctx, casework.Upload{Token: first.Token, Name: "a.bin", Body: strings.NewReader("sample")})
	require.NoError(t, err)
	again, err := f.svc.IssueUploadLinkOnce(ctx, c.Ref, casework.System(), key)
	require.NoError(t, err)
	require.Equal(t, first.Token, again.Token)
	fresh, err := f.svc.IssueUploadLinkOnce(ctx, c.Ref, casework.System(), "outbox:43")
	require.NoError(t, err)
	require.NotEqual(t, first.Token, fresh.Token)

	// A key belongs to its case; another org's member sees no case.
	d := f.into(t, "contoso", casework.StatusInProgress)
	_, err = f.svc.IssueUploadLinkOnce(ctx, d.Ref, casework.System(), key)
	require.ErrorIs(t, err, casework.ErrInvalid)
	_, err = f.svc.IssueUploadLinkOnce(ctx, c.Ref, requester("fabrikam", "U-other"), "k")
	require.ErrorIs(t, err, casework.ErrNotFound)
	_, err = f.svc.IssueUploadLinkOnce(ctx, c.Ref, casework.System(), "")
	require.ErrorIs(t, err, casework.ErrInvalid)

	// A withdrawn case gives no link, not even the one issued before.
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusWithdrawn, Actor: requester("contoso", "U-analyst")})
	require.NoError(t, err)
	_, err = f.svc.IssueUploadLinkOnce(ctx, c.Ref, casework.System(), key)
	var te *casework.TransitionError
	require.ErrorAs(t, err, &te)
}
