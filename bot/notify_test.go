package bot_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
	"github.com/threatdesk/threatdesk/bot/bottest"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/internal/pgtest"
)

const contosoTenant = "a839b112-1253-6432-9bf6-94542403f21c"

// expertAlert is a Defender alert raised by the expert hunting service:
// always notified, at once.
const expertAlert = `{
  "id": "da637472900382838869_1364969609",
  "severity": "High",
  "status": "New",
  "detectionSource": "ThreatExperts",
  "category": "LateralMovement",
  "title": "Hands-on-keyboard attack <!channel> via PsExec",
  "description": "An operator moved laterally.",
  "alertCreationTime": "2026-11-26T20:33:57.7220239Z",
  "firstEventTime": "2026-11-26T20:31:32.9562661Z",
  "lastEventTime": "2026-11-26T20:31:33.0577322Z",
  "lastUpdateTime": "2026-11-26T20:33:59.2Z",
  "machineId": "111e6dd8c833c8a052ea231ec1b19adaf497b625",
  "computerDnsName": "ws-017.contoso.local",
  "aadTenantId": "a839b112-1253-6432-9bf6-94542403f21c",
  "mitreTechniques": ["T1021"],
  "evidence": [
    {"entityType": "File", "sha1": "4b6f1c2d8a9e0f1a2b3c4d5e6f708192a3b4c5d6", "fileName": "psexesvc.exe", "filePath": "C:\\Windows"}
  ]
}`

func TestNotificationCard(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	hunt := notifyingHunt(t, db)
	raiseExpertAlert(t, hunt)
	f := setupWith(t, db, true, NewHuntingIncidents(hunt), casework.Config{})

	card := posted(t, f.slack, contosoSOC, nil, "Consult a threat expert")
	require.Contains(t, plain(card.Message), "Scope of compromise")
	require.Contains(t, plain(card.Message), "Why you are seeing this")
	require.NotEmpty(t, card.Message.ThreadName)
	var incID string
	for _, b := range card.Message.Buttons {
		if b.Action == ActConsult {
			incID = b.Value
		}
	}
	require.NotEmpty(t, incID)
	// The alert's title is untrusted text.
	for _, l := range card.Message.Text {
		for _, s := range l {
			if strings.Contains(s.Text, "<!channel>") {
				require.True(t, s.Untrusted)
			}
		}
	}

	// A Fabrikam analyst cannot acknowledge Contoso's incident.
	_, r := f.press(t, Discord, fabAnalyst, ActAcknowledge, incID, Ref{Platform: Discord, Workspace: fabGuild, Channel: fabSOC, Message: "x"})
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "No such incident in your organisation", "an incident's wording, not the cases'")
	_, r = f.press(t, Discord, fabAnalyst, ActShowScope, incID, Ref{Platform: Discord, Workspace: fabGuild, Channel: fabSOC, Message: "x"})
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "No such incident in your organisation")

	// Acknowledge: the card is edited to say who.
	_, r = f.press(t, Slack, analyst, ActAcknowledge, incID, card.Ref)
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Acknowledged incident "+incID)
	require.True(t, f.slack.WaitFor(tenSeconds, func(cs []bottest.Call) bool {
		for _, c := range cs {
			if c.Op == bottest.OpUpdate && c.Ref == card.Ref && strings.Contains(plain(c.Message), "Acknowledged by") {
				return true
			}
		}
		return false
	}), dump(f.slack.Calls()))
	// Pressed again by someone else (a second analyst who had the card
	// open): told who acknowledged it, not that they did. The same person
	// again (a retried press) is told it is done.
	f.slack.SetName("U0ANALYST2", "Bea Second")
	_, r = f.press(t, Slack, "U0ANALYST2", ActAcknowledge, incID, card.Ref)
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Incident "+incID+" was already acknowledged by Ana Lyst")
	_, r = f.press(t, Slack, analyst, ActAcknowledge, incID, card.Ref)
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Acknowledged incident "+incID)

	// Show full scope: the entity list in the card's thread.
	ack, _ := f.press(t, Slack, analyst, ActShowScope, incID, card.Ref)
	require.Nil(t, ack.Message)
	posted(t, f.slack, contosoSOC, &card.Ref, "Full scope of incident "+incID)

	// Consult: a form, then a case whose subject is the incident.
	ack, _ = f.press(t, Slack, analyst, ActConsult, incID, card.Ref)
	require.NotNil(t, ack.Form)
	_, r = f.submit(t, Slack, analyst, *ack.Form, map[string]string{"question": "is this contained?"})
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "Opened EOD-1 (high priority)")
	desk := posted(t, f.slack, deskChannel, nil, "EOD-1 · Contoso · Incident Hands-on-keyboard")
	require.Contains(t, plain(desk.Message), "score")
	c, err := f.cw.Get(context.Background(), casework.AllOrgs(), "EOD-1")
	require.NoError(t, err)
	require.Equal(t, casework.CategoryNotificationQuestion, c.Category, "an incident consult is a question about a notification")

	// A case on the alert shows what hunting knows of it.
	_, m := f.run(t, Slack, analyst, contosoSOC, "alert da637472900382838869_1364969609 lateral?")
	require.Contains(t, plain(m), "Opened EOD-2")
	desk = posted(t, f.slack, deskChannel, nil, "EOD-2 · Contoso · Alert Hands-on-keyboard")
	require.Contains(t, plain(desk.Message), "host ws-017.contoso.local")
}

func TestSampleNotification(t *testing.T) {
	t.Parallel()
	f := setup(t)
	_, m := f.run(t, Slack, admin, contosoSOC2, "sample-notification")
	require.Contains(t, plain(m), "test notification for Contoso")
	card := posted(t, f.slack, contosoSOC, nil, "[TEST] Sample targeted attack notification")
	require.Contains(t, plain(card.Message), "No attack happened")
	require.Empty(t, card.Message.Buttons, "no incident stands behind a test card for a button to act on")
}

// TestLostCardIsPostedAgain: an incident's card whose post went dead (the
// bot was not in the channel) is lost; the incident stays "posted". The
// incidents list says so and offers Notify now, which posts it again, once;
// later events edit the new card. It stayed "posted" for good, and Notify
// now said its card was in the channel.
func TestLostCardIsPostedAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	hunt := notifyingHunt(t, db)
	f := setupWith(t, db, true, NewHuntingIncidents(hunt), casework.Config{})
	f.slack.Fail(bottest.Permanent("channel_not_found"))
	raiseExpertAlert(t, hunt)
	var id int64
	require.NoError(t, db.QueryRow(ctx, `SELECT id FROM hunting_incidents`).Scan(&id))
	inc := strconv.FormatInt(id, 10)
	f.waitFor(t, "the card's post goes dead", func() bool {
		var n int
		require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE stream = $1 AND dead_at IS NOT NULL`, "incident:"+inc).Scan(&n))
		return n == 1
	})

	// As when the row's other parts went out (the desk's sightings
	// message): the row is delivered, its card recorded dead.
	_, err := db.Exec(ctx, `UPDATE outbox SET dead_at = NULL, delivered_at = now() WHERE stream = $1`, "incident:"+inc)
	require.NoError(t, err)

	_, m := f.run(t, Slack, analyst, contosoSOC, "incidents")
	require.Contains(t, plain(m), "posted, but its card could not be posted")
	var notify *Button
	for _, it := range m.Items {
		for i, b := range it.Actions {
			if b.Action == ActNotifyNow {
				notify = &it.Actions[i]
			}
		}
	}
	require.NotNil(t, notify, "Notify now is offered for the lost card")

	_, r := f.press(t, Slack, analyst, ActNotifyNow, notify.Value, Ref{Platform: Slack, Workspace: slackTeam, Channel: contosoSOC, Message: "x"})
	got, ok := r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "posted to Contoso's notification channel now again")
	card := posted(t, f.slack, contosoSOC, nil, "Consult a threat expert")

	// Now it is there: not offered again, and Acknowledge edits the new card.
	_, r = f.press(t, Slack, analyst, ActNotifyNow, notify.Value, card.Ref)
	got, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.Contains(t, plain(got.Message), "already posted")
	_, r = f.press(t, Slack, analyst, ActAcknowledge, inc, card.Ref)
	_, ok = r.Wait(tenSeconds)
	require.True(t, ok)
	require.True(t, f.slack.WaitFor(tenSeconds, func(cs []bottest.Call) bool {
		for _, c := range cs {
			if c.Op == bottest.OpUpdate && c.Ref == card.Ref && strings.Contains(plain(c.Message), "Acknowledged by") {
				return true
			}
		}
		return false
	}), dump(f.slack.Calls()))
	n := 0
	for _, c := range f.slack.Calls() {
		if c.Op == bottest.OpPost && strings.Contains(plain(c.Message), "Consult a threat expert") && c.Ref.Message != "" {
			n++
		}
	}
	require.Equal(t, 1, n, "one card")
}

// TestFullScopeIsPostedOnce: Show full scope goes through the outbox: when
// the platform stores the message but its answer is lost, it is found
// rather than posted again, and the same press worked twice queues it once.
// It was posted directly, and the press's retry posted it a second time.
func TestFullScopeIsPostedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	hunt := notifyingHunt(t, db)
	raiseExpertAlert(t, hunt)
	f := setupWith(t, db, true, NewHuntingIncidents(hunt), casework.Config{})
	card := posted(t, f.slack, contosoSOC, nil, "Consult a threat expert")
	f.waitFor(t, "the card delivered", func() bool { return f.pending(t) == 0 })
	var inc string
	for _, b := range card.Message.Buttons {
		if b.Action == ActShowScope {
			inc = b.Value
		}
	}
	require.NotEmpty(t, inc)

	f.slack.LoseAnswers(1)
	a := Action{User: f.user(Slack, analyst), Action: ActShowScope, Value: inc, Message: card.Ref, Key: "scope-press-1", Respond: bottest.NewResponder()}
	f.bot.HandleAction(ctx, a)
	f.bot.HandleAction(ctx, a) // the same press delivered again
	posted(t, f.slack, contosoSOC, &card.Ref, "Full scope of incident "+inc)
	f.waitFor(t, "the press worked and everything delivered", func() bool {
		var open int
		require.NoError(t, f.db.QueryRow(ctx, `SELECT count(*) FROM bot_inbound WHERE done_at IS NULL AND dead_at IS NULL`).Scan(&open))
		return open == 0 && f.pending(t) == 0
	})
	n := 0
	for _, c := range f.slack.Calls() {
		if c.Op == bottest.OpPost && strings.Contains(plain(c.Message), "Full scope of incident "+inc) {
			n++
		}
	}
	require.Equal(t, 1, n, "posted once: %s", dump(f.slack.Calls()))
}

// notifyingHunt is hunting for contoso on db that notifies every incident
// (bar 1) after a millisecond's group wait.
func notifyingHunt(t testing.TB, db *pgxpool.Pool) *hunting.Service {
	t.Helper()
	hunt, err := hunting.New(db, hunting.Config{Orgs: []hunting.Org{{ID: "contoso", Tenants: []string{contosoTenant}}}, NotifyScore: 1, GroupWait: time.Millisecond}, nil, nil)
	require.NoError(t, err)
	return hunt
}

// raiseExpertAlert ingests the expert hunting service's alert and sweeps
// past the group wait: its incident's card is queued.
func raiseExpertAlert(t testing.TB, hunt *hunting.Service) {
	t.Helper()
	_, err := hunt.Ingest(context.Background(), []hunting.RawAlert{hunting.RawAlert(expertAlert)})
	require.NoError(t, err)
	time.Sleep(5 * time.Millisecond) // past the group wait
	_, err = hunt.Sweep(context.Background())
	require.NoError(t, err)
}
