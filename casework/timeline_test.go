package casework_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

// tamper runs sql on the timeline with its append-only triggers off
// (session_replication_role = replica needs a superuser, as a real attacker
// with database access would be).
func (f *fixture) tamper(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	tx, err := f.pool.BeginTx(ctx, pgx.TxOptions{})
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, "SET LOCAL session_replication_role = replica")
	require.NoError(t, err)
	tag, err := tx.Exec(ctx, sql, args...)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected())
	require.NoError(t, tx.Commit(ctx))
}

func TestTimelineDetectsTampering(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	all := casework.AllOrgs()
	// Each case: opened, credits, assigned, status, message, status (concluded) = 6 entries.
	mk := func() (*casework.Case, int64) {
		c := f.into(t, "contoso", casework.StatusInProgress)
		_, err := f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: expert("U-expert"), Text: "benign"})
		require.NoError(t, err)
		_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusConcluded, Actor: expert("U-expert"), Summary: "benign"})
		require.NoError(t, err)
		require.NoError(t, f.svc.VerifyTimeline(ctx, all, c.Ref))
		n, err := casework.ParseRef(c.Ref)
		require.NoError(t, err)
		return c, n
	}

	c, n := mk()
	tl, err := f.svc.Timeline(ctx, all, c.Ref)
	require.NoError(t, err)
	require.Len(t, tl, 6)
	require.Equal(t, []string{casework.EventOpened, casework.EventCreditsChanged, casework.EventAssigned,
		casework.EventStatusChanged, casework.EventMessageAdded, casework.EventStatusChanged},
		[]string{tl[0].Kind, tl[1].Kind, tl[2].Kind, tl[3].Kind, tl[4].Kind, tl[5].Kind})

	// The database refuses changes outright.
	_, err = f.pool.Exec(ctx, `UPDATE case_timeline SET detail = '{}' WHERE case_number = $1 AND seq = 5`, n)
	require.ErrorContains(t, err, "append-only")
	_, err = f.pool.Exec(ctx, `DELETE FROM case_timeline WHERE case_number = $1 AND seq = 5`, n)
	require.ErrorContains(t, err, "append-only")
	_, err = f.pool.Exec(ctx, `TRUNCATE case_timeline`)
	require.ErrorContains(t, err, "append-only")

	for _, tc := range []struct {
		name    string
		sql     string
		wantSeq int
	}{
		{"edited message", `UPDATE case_timeline SET detail = replace(detail, 'benign', 'malicious') WHERE case_number = $1 AND seq = 5`, 5},
		{"edited actor", `UPDATE case_timeline SET actor_id = 'U-mallory' WHERE case_number = $1 AND seq = 3`, 3},
		{"edited time", `UPDATE case_timeline SET at = at - interval '1 hour' WHERE case_number = $1 AND seq = 1`, 1},
		{"deleted entry", `DELETE FROM case_timeline WHERE case_number = $1 AND seq = 4`, 4},
		{"deleted last entry", `DELETE FROM case_timeline WHERE case_number = $1 AND seq = 6`, 6},
		{"rehashed edit", `UPDATE case_timeline SET detail = '{}', hash = sha256(prev_hash || 'x') WHERE case_number = $1 AND seq = 2`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, n := mk()
			f.tamper(t, tc.sql, n)
			err := f.svc.VerifyTimeline(ctx, all, c.Ref)
			var te *casework.TamperError
			require.ErrorAs(t, err, &te)
			require.Equal(t, c.Ref, te.Ref)
			require.Equal(t, tc.wantSeq, te.Seq, "%v", err)
		})
	}
}
