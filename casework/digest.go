package casework

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/outbox"
)

// The weekly digest: every week the service report of the week before, for
// every org, goes to the managers' channel, once, whichever replicas run the
// schedule. The schedule (the config's reports.digest.when) belongs to the
// caller; each time it fires, the caller calls QueueDigest. The first call
// for a week records the week and appends EventDigest to the outbox in one
// transaction; later calls, on this replica or another, find the week
// recorded and do nothing. The delivery worker renders the event with
// Report (DigestEvent.Request) and posts it, as it does every outbox event:
// at least once, and once per part with the bot's delivery records.

// EventDigest: the weekly digest of the week in the payload is due.
// Payload DigestEvent; stream DigestStream.
const EventDigest = "report.digest"

// DigestStream is the outbox stream of the weekly digests.
const DigestStream = "report:digest"

// DigestEvent is the payload of EventDigest.
type DigestEvent struct {
	// From and End bound the week reported (Monday 00:00 to the next, in
	// TimeZone); TimeZone is an IANA name ("Europe/London").
	From     time.Time `json:"from"`
	End      time.Time `json:"end"`
	TimeZone string    `json:"time_zone"`
}

// Request is the report to render for the digest, every org: pass it to
// Report with AllOrgs.
func (e DigestEvent) Request() (ReportRequest, error) {
	loc, err := time.LoadLocation(e.TimeZone)
	if err != nil {
		return ReportRequest{}, fmt.Errorf("digest: time zone %q: %w", e.TimeZone, err)
	}
	return ReportRequest{Period: PeriodWeek, Location: loc, At: e.From}, nil
}

// QueueDigest queues the weekly digest of the last whole calendar week
// before the scheduled time due gives for now (in loc; nil is UTC; a nil
// due is now itself), once: it returns true when this call
// queued it, false when it was queued before. loc must be a named zone
// (time.LoadLocation), not time.Local, so that the delivery worker can load
// it again from the event.
//
// due maps now to the latest scheduled time, so that a digest queued late
// (the service was down at the time, or the database failed) is still of
// the week that time would have queued.
func (s *Service) QueueDigest(ctx context.Context, loc *time.Location, due func(now time.Time) time.Time) (bool, error) {
	if loc == nil {
		loc = time.UTC
	}
	if _, err := time.LoadLocation(loc.String()); err != nil || loc.String() == "Local" {
		return false, fmt.Errorf("digest: time zone %q is not a named zone such as Europe/London: %w", loc.String(), ErrInvalid)
	}
	now := s.cfg.now()
	// A week back on the zone's calendar, not 168 hours: across a change of
	// the clocks those end in another week.
	at := now
	if due != nil {
		at = due(now)
	}
	from, end := periodBounds(PeriodWeek, at.In(loc).AddDate(0, 0, -7), loc)
	ev := DigestEvent{From: from, End: end, TimeZone: loc.String()}
	queued := false
	err := s.inTx(ctx, "queue the weekly digest", func(tx pgx.Tx) error {
		// A week is its Monday's date, whatever the zone: after a change
		// of timezone (or during a rolling deploy with two), Monday 00:00
		// in Berlin is another instant than in UTC, yet the same week. The
		// table is locked (a weekly write) so that replicas in two zones
		// cannot both pass the check.
		if _, err := tx.Exec(ctx, `LOCK TABLE casework_digests IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("digest: lock the digests: %w", err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO casework_digests (period_start, period_end, time_zone, queued_at)
SELECT $1, $2, $3, $4
WHERE NOT EXISTS (
    SELECT 1 FROM casework_digests d
    WHERE d.period_start BETWEEN $1::timestamptz - interval '2 days' AND $1::timestamptz + interval '2 days'
      AND (d.period_start AT TIME ZONE d.time_zone)::date = $5::date)
ON CONFLICT (period_start) DO NOTHING`, from, end, ev.TimeZone, now, from.In(loc).Format(time.DateOnly))
		if err != nil {
			return fmt.Errorf("digest: record the week of %s: %w", from.Format(time.DateOnly), err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		if _, err := outbox.Append(ctx, tx, outbox.Event{Kind: EventDigest, Stream: DigestStream, Payload: ev}); err != nil {
			return fmt.Errorf("digest: queue the week of %s: %w", from.Format(time.DateOnly), err)
		}
		queued = true
		return nil
	})
	if err != nil {
		return false, err
	}
	if queued {
		s.log.InfoContext(ctx, "weekly digest queued", "from", from, "time_zone", ev.TimeZone)
	}
	return queued, nil
}
