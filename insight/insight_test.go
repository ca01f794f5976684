package insight_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/insight"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

// sharedFile is a database where incident 1 of org1 and incident 2 of
// org2 hold the same file.
func sharedFile(t *testing.T, ctx context.Context) *pgxpool.Pool {
	t.Helper()
	db := pgtest.New(t)
	for _, s := range []string{
		`INSERT INTO hunting_incidents (id, org, title, device_names, device_count, first_activity, last_activity, created_at, updated_at)
		 VALUES (1, 'org1', 'one', '{ws-1}', 1, now(), now(), now(), now()), (2, 'org2', 'two', '{ws-2}', 1, now(), now(), now(), now())`,
		`INSERT INTO hunting_incident_entities (incident_id, org, kind, value, first_seen, last_seen)
		 VALUES (1, 'org1', 'file', repeat('ab', 32), now(), now()), (2, 'org2', 'file', repeat('ab', 32), now(), now())`,
	} {
		_, err := db.Exec(ctx, s)
		require.NoError(t, err, s)
	}
	return db
}

// TestCasesAboutAnIncidentCountInItsOrgOnly: the same file in incidents of
// org1 and org2; org2 has a case about its incident, org3 a case naming the
// same incident number (an incident of its own, by that number). Asked from
// org1, the sighting is org2's, with its case; org3 is not named.
func TestCasesAboutAnIncidentCountInItsOrgOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sharedFile(t, ctx)
	for _, s := range []string{
		`INSERT INTO cases (org, open_key, subject_kind, subject_id, category, question, priority, requester_platform, requester_workspace, requester_user,
		                    status, credit_used, created_at, updated_at, status_at, response_target_us, conclusion_target_us)
		 VALUES ('org2', 'a', 'incident', '2', 'notification_question', 'q', 'high', 'slack', 'T0', 'U0', 'new', true, now(), now(), now(), 1, 1),
		        ('org3', 'b', 'incident', '2', 'notification_question', 'q', 'high', 'slack', 'T0', 'U0', 'new', true, now(), now(), now(), 1, 1)`,
	} {
		_, err := db.Exec(ctx, s)
		require.NoError(t, err, s)
	}
	svc := benchService(t, ctx, db)
	got, err := svc.Sightings(ctx, "org1", insight.Subject{Kind: "incident", ID: "1"})
	require.NoError(t, err)
	require.Len(t, got.Orgs, 1, "%+v", got.Orgs)
	require.Equal(t, "org2", got.Orgs[0].Org)
	require.Equal(t, 1, got.Orgs[0].CaseCount)
	require.Equal(t, "EOD-1", got.Orgs[0].Cases[0].Ref)
}

// TestViewsWaitForTheDisk: hunting commits its intake without waiting for
// the disk, so every view that reads it (sightings, what an org knows, a
// campaign) flushes the WAL before it answers; nothing shown can be taken
// back by a crash of the database.
func TestViewsWaitForTheDisk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sharedFile(t, ctx)
	svc := benchService(t, ctx, db)
	_, err := svc.Tag(ctx, insight.Target{Kind: insight.TargetIncident, Ref: "2"}, "Storm-0501", "Eve")
	require.NoError(t, err)
	for name, read := range map[string]func() error{
		"sightings": func() error {
			got, err := svc.Sightings(ctx, "org1", insight.Subject{Kind: "incident", ID: "1"})
			if err == nil && len(got.Orgs) != 1 {
				t.Errorf("sightings of incident 1: %+v", got.Orgs)
			}
			return err
		},
		"what the org knows": func() error {
			_, err := svc.Known(ctx, "org1", insight.Subject{Kind: "file", ID: strings.Repeat("ab", 32)})
			return err
		},
		"a campaign": func() error {
			c, err := svc.Campaign(ctx, "storm-0501")
			if err == nil && (len(c.Items) != 1 || c.Items[0].Title != "two") {
				t.Errorf("campaign items: %+v", c.Items)
			}
			return err
		},
	} {
		lsn := pgtest.AsyncCommit(t, db)
		require.NoError(t, read(), name)
		require.True(t, pgtest.Flushed(t, db, lsn), "%s flushed before it answered", name)
	}
}
