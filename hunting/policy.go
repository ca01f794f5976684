package hunting

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/cronlock"
	"github.com/threatdesk/threatdesk/internal/outbox"
	"github.com/threatdesk/threatdesk/internal/plural"
)

// Outbox event kinds. Every event's stream is "incident:<id>", so one
// incident's events are delivered in order; the payload is EventPayload.
const (
	// EventNotify: the incident crossed the notification bar (after
	// group_wait): post the card. Priority "top" for the expert service.
	EventNotify = "incident.notify"
	// EventUpdate: the incident grew (Changes says how): edit the card in
	// place and add one line (Note) to its thread. At most one per group_interval.
	EventUpdate = "incident.update"
	// EventRepeat: an unacknowledged high incident, repeated every
	// repeat_interval: post a reminder in the card's thread.
	EventRepeat = "incident.repeat"
	// EventAcknowledged: someone acknowledged it: edit the card to say who.
	EventAcknowledged = "incident.acknowledged"
	// EventMerged: a posted incident was folded into MergedInto: edit its
	// card to point at the other one.
	EventMerged = "incident.merged"
	// EventClosed: a posted incident was closed: edit the card.
	EventClosed = "incident.closed"
	// EventResolved: a posted incident was resolved, by a person (Resolve:
	// By, Classification, Comment) or because every alert of it was
	// resolved upstream (By "upstream", Classification from the alerts, if
	// they agree). Edit the card to say "Resolved by <By> as
	// <Classification.Label()>" (with the comment) and drop its action
	// buttons (Status is "closed", Final true); post Note in its thread.
	EventResolved = "incident.resolved"
)

// Priorities on EventPayload.
const (
	PriorityTop    = "top"
	PriorityNormal = "normal"
)

// Change kinds on an update.
const (
	ChangeNewDevice  = "new_device"
	ChangeNewUser    = "new_user"
	ChangeNewTactic  = "new_tactic"
	ChangeSeverityUp = "severity_up"
	// ChangeSeverityDown: alerts were reclassified upstream (false
	// positive, expected activity) or their severity lowered.
	ChangeSeverityDown = "severity_down"
	// ChangeResolvedUpstream: more of its alerts were resolved in the source.
	ChangeResolvedUpstream = "resolved_upstream"
	// ChangeReopenedUpstream: fewer of its alerts are resolved in the source.
	ChangeReopenedUpstream = "reopened_upstream"
	ChangeExpert           = "expert"
	// ChangeTacticGone and ChangeExpertGone: the alerts that showed a
	// tactic, or the expert hunting service's alert, were found benign
	// upstream.
	ChangeTacticGone = "tactic_gone"
	ChangeExpertGone = "expert_gone"
)

// Change is one thing that changed since the card was last posted or edited.
type Change struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// EventPayload is the JSON payload of every hunting outbox event. The bot
// reads the full card through Service.Incident; the payload carries what
// routing and the thread line need.
type EventPayload struct {
	Org        string `json:"org"`
	IncidentID int64  `json:"incident_id"`
	// Seq numbers the notifications of one incident (1 = first post).
	Seq      int      `json:"seq,omitempty"`
	Title    string   `json:"title,omitempty"`
	Severity Severity `json:"severity,omitempty"`
	Score    int      `json:"score,omitempty"`
	Expert   bool     `json:"expert,omitempty"`
	Priority string   `json:"priority,omitempty"`
	// Status is the incident's status once the event is recorded: open,
	// closed or merged. Final is true when it is not open: the card must
	// drop the buttons that act on the incident (Acknowledge, Resolve),
	// since they can no longer work. Every event carries both.
	Status string `json:"status"`
	Final  bool   `json:"final,omitempty"`
	// Changes and Note (one line for the thread) on incident.update; Note
	// also on incident.resolved.
	Changes []Change `json:"changes,omitempty"`
	Note    string   `json:"note,omitempty"`
	// By on incident.acknowledged, incident.closed and incident.resolved,
	// and on incident.notify when a person asked for the post (NotifyNow).
	By string `json:"by,omitempty"`
	// Classification (true_positive, informational_expected_activity,
	// false_positive; ClassificationLabel in words) and Comment on
	// incident.resolved.
	Classification      Classification `json:"classification,omitempty"`
	ClassificationLabel string         `json:"classification_label,omitempty"`
	Comment             string         `json:"comment,omitempty"`
	// Follows is the closed incident this one follows (new activity on its
	// entities), on every event of the new incident.
	Follows int64 `json:"follows,omitempty"`
	// MergedInto and Reason on incident.merged.
	MergedInto int64     `json:"merged_into,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"at"`
}

// Stream is the outbox stream of an incident's events.
func Stream(incidentID int64) string { return "incident:" + strconv.FormatInt(incidentID, 10) }

func (s *Service) appendEvent(ctx context.Context, tx pgx.Tx, kind string, p EventPayload) error {
	if _, err := outbox.Append(ctx, tx, outbox.Event{Kind: kind, Stream: Stream(p.IncidentID), Payload: p}); err != nil {
		return fmt.Errorf("record %s for incident %d: %w", kind, p.IncidentID, err)
	}
	s.m.events.WithLabelValues(s.liveConfig().orgLabel(p.Org), kind).Inc()
	return nil
}

// snapshot is what the card showed at the last notification.
type snapshot struct {
	Devices     []string `json:"devices"`
	DeviceCount int      `json:"device_count"`
	Users       []string `json:"users"`
	UserCount   int      `json:"user_count"`
	Tactics     []string `json:"tactics"`
	Severity    Severity `json:"severity"`
	Expert      bool     `json:"expert"`
	// Resolved counts the alerts resolved upstream; Alerts all of them.
	Resolved int `json:"resolved,omitempty"`
	Alerts   int `json:"alerts,omitempty"`
	// At is when the card was last drawn from the incident (zero in
	// snapshots stored before it was kept).
	At time.Time `json:"at,omitzero"`
}

// maxSnapshotNames caps the names a snapshot keeps; growth beyond is
// reported by count.
const maxSnapshotNames = 200

func (st *incState) snap(now time.Time) *snapshot {
	return &snapshot{Devices: st.DeviceNames, DeviceCount: st.DeviceCount, Users: st.UserNames, UserCount: st.UserCount,
		Tactics: st.Tactics, Severity: st.Severity, Expert: st.Expert, Resolved: st.ResolvedAlerts, Alerts: st.AlertCount, At: now}
}

// diff says what changed since the snapshot: what grew, and what an
// upstream reclassification took away.
func diff(old *snapshot, st *incState) []Change {
	if old == nil {
		return nil
	}
	var cs []Change
	newNames := func(kind string, was []string, wasCount int, now []string, nowCount int, label string) {
		var added []string
		for _, n := range now {
			if !contains(was, n) {
				added = append(added, n)
			}
		}
		if len(was) >= maxSnapshotNames && nowCount > wasCount {
			cs = append(cs, Change{Kind: kind, Detail: fmt.Sprintf("%d more %s (now %d)", nowCount-wasCount, label, nowCount)})
			return
		}
		for i, n := range added {
			if i == 5 {
				cs = append(cs, Change{Kind: kind, Detail: fmt.Sprintf("and %d more new %s", len(added)-5, label)})
				break
			}
			cs = append(cs, Change{Kind: kind, Detail: "new " + label[:len(label)-1] + " " + n})
		}
	}
	newNames(ChangeNewDevice, old.Devices, old.DeviceCount, st.DeviceNames, st.DeviceCount, "devices")
	newNames(ChangeNewUser, old.Users, old.UserCount, st.UserNames, st.UserCount, "users")
	for _, t := range st.Tactics {
		if !contains(old.Tactics, t) {
			cs = append(cs, Change{Kind: ChangeNewTactic, Detail: "new tactic " + tacticName(t) + " (" + t + ")"})
		}
	}
	for _, t := range old.Tactics {
		if !contains(st.Tactics, t) {
			cs = append(cs, Change{Kind: ChangeTacticGone, Detail: "tactic " + tacticName(t) + " (" + t + ") no longer counts (alerts reclassified upstream)"})
		}
	}
	switch {
	case st.Severity.Rank() > old.Severity.Rank():
		cs = append(cs, Change{Kind: ChangeSeverityUp, Detail: fmt.Sprintf("severity up: %s → %s", old.Severity, st.Severity)})
	case st.Severity.Rank() < old.Severity.Rank():
		cs = append(cs, Change{Kind: ChangeSeverityDown, Detail: fmt.Sprintf("severity down: %s → %s (alerts reclassified upstream)", old.Severity, st.Severity)})
	}
	switch {
	case st.ResolvedAlerts > old.Resolved:
		cs = append(cs, Change{Kind: ChangeResolvedUpstream, Detail: fmt.Sprintf("%d of %s resolved in the source", st.ResolvedAlerts, plural.S(st.AlertCount, "alert"))})
	case st.ResolvedAlerts < old.Resolved:
		cs = append(cs, Change{Kind: ChangeReopenedUpstream, Detail: fmt.Sprintf("reopened in the source: now %d of %s resolved", st.ResolvedAlerts, plural.S(st.AlertCount, "alert"))})
	}
	switch {
	case st.Expert && !old.Expert:
		cs = append(cs, Change{Kind: ChangeExpert, Detail: "the expert hunting service raised an alert on it"})
	case !st.Expert && old.Expert:
		cs = append(cs, Change{Kind: ChangeExpertGone, Detail: "the expert hunting service's alert was found benign upstream"})
	}
	return cs
}

func noteFor(cs []Change) string {
	s := ""
	for i, c := range cs {
		if i > 0 {
			s += "; "
		}
		s += c.Detail
	}
	return clip("Update: "+s, 1000)
}

// evaluate applies the notification policy at now and returns the event to
// record (kind "" for none). It moves st's notification state accordingly.
func (s *Service) evaluate(now time.Time, st *incState) (string, []Change) {
	st.NextDue = nil
	if st.Status != "open" {
		return "", nil
	}
	eligible := st.Expert || st.forced || st.Score >= s.liveConfig().notifyScore(st.Org)
	repeatable := st.Expert || st.Severity.Rank() >= s.cfg.RepeatSeverity.Rank()
	kind := ""
	redraw := false // the card alone is redrawn
	var changes []Change
	due := func(t time.Time) {
		if st.NextDue == nil || t.Before(*st.NextDue) {
			st.NextDue = &t
		}
	}
	if st.PostedAt == nil {
		if !eligible {
			// Under the bar again before its post: a later crossing waits
			// group_wait afresh, to gather its burst into the first post.
			st.EligibleAt = nil
			return "", nil
		}
		if st.EligibleAt == nil {
			st.EligibleAt = &now
		}
		at := st.EligibleAt.Add(s.cfg.GroupWait)
		if st.Expert || st.forced {
			at = now
		}
		if now.Before(at) {
			due(at)
			return "", nil
		}
		kind = EventNotify
		st.PostedAt = &now
	} else {
		changes = diff(st.Notified, st)
		held := len(changes) > 0 // (held back below while group_interval runs)
		repeatDue := repeatable && st.AckedAt == nil && !now.Before(st.NotifiedAt.Add(s.cfg.RepeatInterval))
		if len(changes) > 0 {
			// An update also serves as the repeat when both are due.
			at := st.NotifiedAt.Add(s.cfg.GroupInterval)
			if now.Before(at) && !repeatDue {
				due(at)
				changes = nil
			} else {
				kind = EventUpdate
			}
		}
		if kind == "" && repeatDue {
			kind = EventRepeat
		}
		// The attack grows without a new device, user or tactic (more
		// alerts: its timeline, counts and score): the card alone is
		// redrawn, no thread note, at most once per group_interval of the
		// last drawing. It is not a notification: the repeat's clock
		// (NotifiedAt) runs on, and a change held back is not absorbed.
		if kind == "" && !held && st.Notified != nil && st.AlertCount != st.Notified.Alerts {
			if at := st.Notified.At.Add(s.cfg.GroupInterval); now.Before(at) {
				due(at)
			} else {
				kind, redraw = EventUpdate, true
			}
		}
	}
	if kind != "" {
		if !redraw {
			st.NotifiedAt = &now
		}
		st.Seq++
		if kind != EventRepeat {
			st.Notified = st.snap(now)
		}
	}
	if repeatable && st.AckedAt == nil && st.NotifiedAt != nil {
		due(st.NotifiedAt.Add(s.cfg.RepeatInterval))
	}
	return kind, changes
}

func (s *Service) payload(st *incState, now time.Time) EventPayload {
	p := EventPayload{Org: st.Org, IncidentID: st.ID, Seq: st.Seq, Title: st.Title, Severity: st.Severity,
		Score: st.Score, Expert: st.Expert, Priority: PriorityNormal, At: now, Status: st.Status, Final: st.Status != "open",
		Classification: st.Classification, Follows: st.Follows, By: st.notifyBy}
	if st.Classification != classNone {
		p.ClassificationLabel = st.Classification.Label()
	}
	if st.Expert {
		p.Priority = PriorityTop
	}
	return p
}

// ErrNotFound is returned for an incident, alert, device or file that does
// not exist in the org (another org's item is not found either).
var ErrNotFound = errors.New("hunting: not found")

// Acknowledge records who acknowledged the incident (whoID tells people
// apart, who is the name the card shows), which stops its repeats, and
// records incident.acknowledged so the card shows it. A second
// acknowledgement keeps the first and records nothing: by the same person
// (a press retried) it returns nil, by someone else ErrAlreadyAcknowledged,
// saying who acknowledged it. An incident that is
// not open (merged, resolved, closed) returns ErrNotOpen, saying into which
// incident it was merged or by whom it was resolved.
func (s *Service) Acknowledge(ctx context.Context, org string, incidentID int64, whoID, who string) error {
	who, whoID = clip(who, maxShortLen), clip(whoID, maxShortLen)
	now := s.cfg.Now().UTC()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Ingest and the sweep write next_due_at from what they read
		// under this lock, without row locks.
		if err := lockOrg(ctx, tx, org); err != nil {
			return err
		}
		var st incState
		var merged *int64
		var resolvedBy, ackedBy, ackedByID *string
		err := tx.QueryRow(ctx, `SELECT id, status, acked_at, acked_by, acked_by_id, title, severity, score, expert, notify_seq, merged_into, resolved_by, classification
FROM hunting_incidents WHERE org = $1 AND id = $2 FOR UPDATE`, org, incidentID).Scan(&st.ID, &st.Status, &st.AckedAt, &ackedBy, &ackedByID, &st.Title,
			&st.Severity, &st.Score, &st.Expert, &st.Seq, &merged, &resolvedBy, &st.Classification)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("acknowledge incident %d of org %s: %w", incidentID, org, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("acknowledge incident %d: %w", incidentID, err)
		}
		// A card pressed before its edit arrived: a merged incident's
		// reminders go on in the one it was merged into, a closed one has
		// none.
		if st.Status != "open" {
			return notOpen(incidentID, st.Status, merged, resolvedBy, string(st.Classification))
		}
		if st.AckedAt != nil {
			same := ackedBy == nil || *ackedBy == who // acknowledged before ids were kept
			if ackedByID != nil {
				same = *ackedByID == whoID
			}
			if !same {
				return fmt.Errorf("incident %d was already acknowledged by %s: %w", incidentID, deref(ackedBy), ErrAlreadyAcknowledged)
			}
			return nil
		}
		// Repeats stop; a pending first post or update still goes out.
		if _, err := tx.Exec(ctx, `
UPDATE hunting_incidents SET acked_by = $2, acked_by_id = $5, acked_at = $3, updated_at = $3,
    next_due_at = CASE WHEN posted_at IS NULL OR notified IS NULL THEN next_due_at
                       WHEN next_due_at = notified_at + $4::interval THEN NULL ELSE next_due_at END
WHERE id = $1`, incidentID, who, now, s.cfg.RepeatInterval, whoID); err != nil {
			return fmt.Errorf("acknowledge incident %d: %w", incidentID, err)
		}
		st.Org = org
		p := s.payload(&st, now)
		p.By = who
		return s.appendEvent(ctx, tx, EventAcknowledged, p)
	})
}

// Close closes an incident: it takes no new alerts (a new incident starts)
// and is never reopened. who is recorded on the event.
func (s *Service) Close(ctx context.Context, org string, incidentID int64, who string) error {
	now := s.cfg.Now().UTC()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Ingest must not attach alerts to it half-way: take the org's lock.
		if err := lockOrg(ctx, tx, org); err != nil {
			return err
		}
		var st incState
		var posted bool
		err := tx.QueryRow(ctx, `SELECT id, status, title, severity, score, expert, posted_at IS NOT NULL FROM hunting_incidents
WHERE org = $1 AND id = $2 FOR UPDATE`, org, incidentID).Scan(&st.ID, &st.Status, &st.Title, &st.Severity, &st.Score, &st.Expert, &posted)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("close incident %d of org %s: %w", incidentID, org, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("close incident %d: %w", incidentID, err)
		}
		if st.Status != "open" {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE hunting_incidents SET status = 'closed', closed_at = $2, next_due_at = NULL, updated_at = $2 WHERE id = $1`,
			incidentID, now); err != nil {
			return fmt.Errorf("close incident %d: %w", incidentID, err)
		}
		if !posted {
			return nil
		}
		st.Org, st.Status = org, "closed"
		p := s.payload(&st, now)
		p.By = clip(who, maxShortLen)
		return s.appendEvent(ctx, tx, EventClosed, p)
	})
}

// Start schedules the sweep every SweepInterval, the prevalence prune every
// hour, and the Graph pull every Graph.Interval when configured, each under
// a Postgres advisory lock (one replica at a time), and drains the intake
// queue (queue.go). They run until Stop or
// until ctx ends. A second Start is an error (lifecycle.ErrStarted).
func (s *Service) Start(ctx context.Context) error {
	return s.life.Start(ctx, func(ctx context.Context) error {
		sch, err := gocron.NewScheduler(gocron.WithDistributedLocker(cronlock.New(s.pool, "threatdesk")))
		if err != nil {
			return fmt.Errorf("hunting: scheduler: %w", err)
		}
		type job struct {
			name  string
			every time.Duration
			run   func(ctx context.Context)
			// once: one replica runs it per interval (claimRun), not
			// every replica.
			once bool
		}
		jobs := []job{
			{"hunting-sweep", s.cfg.SweepInterval, func(ctx context.Context) {
				if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
					s.log.Error("notification sweep failed", "err", err)
				}
			}, false},
			{"hunting-prune", time.Hour, func(ctx context.Context) {
				if _, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
					s.log.Error("prevalence prune failed", "err", err)
				}
			}, true},
		}
		if s.cfg.Graph != nil {
			jobs = append(jobs, job{"hunting-graph-pull", s.cfg.Graph.Interval, func(ctx context.Context) {
				if n, err := s.PullGraph(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("graph pull", "ingested", n, "err", err)
				}
			}, true})
		}
		for _, j := range jobs {
			_, err = sch.NewJob(gocron.DurationJob(j.every),
				gocron.NewTask(func() {
					_ = s.life.Guard(j.name, func() error {
						if j.once {
							switch mine, err := s.claimRun(ctx, j.name, j.every); {
							case err != nil:
								if ctx.Err() == nil {
									s.log.Warn("scheduled job not run: could not claim its run", "job", j.name, "err", err)
								}
								return nil
							case !mine:
								return nil // another replica ran it within the interval
							}
						}
						j.run(ctx)
						return nil
					}) // a panic is logged and counted
				}),
				gocron.WithName(j.name),
				gocron.WithSingletonMode(gocron.LimitModeReschedule),
				// At once, then every interval: gocron's timer lives in
				// memory, and replicas restarted more often than the hourly
				// prune's interval would otherwise never prune.
				gocron.WithStartAt(gocron.WithStartImmediately()))
			if err != nil {
				_ = sch.Shutdown()
				return fmt.Errorf("hunting: schedule %s: %w", j.name, err)
			}
		}
		sch.Start()
		s.life.Go("intake-queue", s.runQueue)
		s.life.Go("scheduler", func(ctx context.Context) error {
			<-ctx.Done()
			if err := sch.Shutdown(); err != nil { // waits for a job in progress
				return fmt.Errorf("hunting: stop scheduler: %w", err)
			}
			return nil
		})
		return nil
	})
}

// Stop cancels the jobs, waits for one in progress and stops the
// scheduler. It is safe before Start and more than once.
func (s *Service) Stop() error { return s.life.Stop() }

// claimRun reports whether this replica runs job now: false when any
// replica started it less than nine tenths of every ago (a replica's own
// ticks, every apart, always claim; hunting_job_runs). The database's
// clock decides, so replicas' clocks need not agree.
func (s *Service) claimRun(ctx context.Context, job string, every time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
INSERT INTO hunting_job_runs (job, ran_at) VALUES ($1, clock_timestamp())
ON CONFLICT (job) DO UPDATE SET ran_at = EXCLUDED.ran_at
WHERE hunting_job_runs.ran_at <= clock_timestamp() - $2::interval`, job, every-every/10)
	if err != nil {
		return false, fmt.Errorf("claim the run of %s: %w", job, err)
	}
	return tag.RowsAffected() == 1, nil
}
