package hunting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/cronlock"
	"github.com/threatdesk/threatdesk/internal/outbox"
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
	ChangeExpert     = "expert"
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
	// Changes and Note (one line for the thread) on incident.update.
	Changes []Change `json:"changes,omitempty"`
	Note    string   `json:"note,omitempty"`
	// By on incident.acknowledged and incident.closed.
	By string `json:"by,omitempty"`
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
	s.m.events.WithLabelValues(kind).Inc()
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
}

// maxSnapshotNames caps the names a snapshot keeps; growth beyond is
// reported by count.
const maxSnapshotNames = 200

// incState is an incident's stored state plus its freshly computed aggregate.
type incState struct {
	ID                          int64
	Org                         string
	Status                      string
	EligibleAt, PostedAt        *time.Time
	NotifiedAt, AckedAt         *time.Time
	Notified                    *snapshot
	Seq                         int
	NextDue                     *time.Time
	Title, Summary              string
	Severity                    Severity
	Score                       int
	Breakdown                   []Reason
	Expert                      bool
	AlertCount                  int
	DeviceCount, UserCount      int
	DeviceNames, UserNames      []string
	Tactics                     []string
	tacticSeen                  []tacticSeen
	FirstActivity, LastActivity time.Time
}

func (st *incState) snap() *snapshot {
	return &snapshot{Devices: st.DeviceNames, DeviceCount: st.DeviceCount, Users: st.UserNames, UserCount: st.UserCount,
		Tactics: st.Tactics, Severity: st.Severity, Expert: st.Expert}
}

// diff says what grew since the snapshot.
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
	if st.Severity.Rank() > old.Severity.Rank() {
		cs = append(cs, Change{Kind: ChangeSeverityUp, Detail: fmt.Sprintf("severity up: %s → %s", old.Severity, st.Severity)})
	}
	if st.Expert && !old.Expert {
		cs = append(cs, Change{Kind: ChangeExpert, Detail: "the expert hunting service raised an alert on it"})
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
	eligible := st.Expert || st.Score >= s.cfg.notifyScore(st.Org)
	repeatable := st.Expert || st.Severity.Rank() >= s.cfg.RepeatSeverity.Rank()
	kind := ""
	var changes []Change
	due := func(t time.Time) {
		if st.NextDue == nil || t.Before(*st.NextDue) {
			st.NextDue = &t
		}
	}
	if st.PostedAt == nil {
		if !eligible {
			return "", nil
		}
		if st.EligibleAt == nil {
			st.EligibleAt = &now
		}
		at := st.EligibleAt.Add(s.cfg.GroupWait)
		if st.Expert {
			at = *st.EligibleAt
		}
		if now.Before(at) {
			due(at)
			return "", nil
		}
		kind = EventNotify
		st.PostedAt = &now
	} else {
		changes = diff(st.Notified, st)
		if len(changes) > 0 {
			at := st.NotifiedAt.Add(s.cfg.GroupInterval)
			if now.Before(at) {
				due(at)
				changes = nil
			} else {
				kind = EventUpdate
			}
		}
		if kind == "" && repeatable && st.AckedAt == nil {
			if at := st.NotifiedAt.Add(s.cfg.RepeatInterval); !now.Before(at) {
				kind = EventRepeat
			}
		}
	}
	if kind != "" {
		st.NotifiedAt = &now
		st.Seq++
		if kind != EventRepeat {
			st.Notified = st.snap()
		}
	}
	if repeatable && st.AckedAt == nil && st.NotifiedAt != nil {
		due(st.NotifiedAt.Add(s.cfg.RepeatInterval))
	}
	return kind, changes
}

func (s *Service) payload(st *incState, now time.Time) EventPayload {
	p := EventPayload{Org: st.Org, IncidentID: st.ID, Seq: st.Seq, Title: st.Title, Severity: st.Severity,
		Score: st.Score, Expert: st.Expert, Priority: PriorityNormal, At: now}
	if st.Expert {
		p.Priority = PriorityTop
	}
	return p
}

// refresh recomputes the aggregate, score and notification state of the
// given incidents (all of org, locked by the caller's transaction or the
// org lock), writes them back and records any due notification.
func (s *Service) refresh(ctx context.Context, tx pgx.Tx, org string, ids []int64, now time.Time) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	sts, err := s.loadStates(ctx, tx, org, ids, now)
	if err != nil {
		return 0, err
	}
	events := 0
	n := len(sts)
	var (
		uID                       = make([]int64, n)
		uTitle, uSummary, uSev    = mk(n), mk(n), mk(n)
		uRank, uScore, uAlerts    = make([]int32, n), make([]int32, n), make([]int32, n)
		uDev, uUsers, uSeq        = make([]int32, n), make([]int32, n), make([]int32, n)
		uBreak, uSnap             = make([][]byte, n), make([][]byte, n)
		uExpert                   = make([]bool, n)
		uTactics                  = mk(n)
		uFirst, uLast             = make([]*time.Time, n), make([]*time.Time, n)
		uElig, uPosted, uNotified = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		uDue                      = make([]*time.Time, n)
		uChanges                  = make([][]byte, n)
	)
	for i, st := range sts {
		kind, changes := s.evaluate(now, st)
		if kind != "" {
			p := s.payload(st, now)
			if kind == EventUpdate {
				p.Changes, p.Note = changes, noteFor(changes)
				if uChanges[i], err = json.Marshal(changes); err != nil {
					return 0, fmt.Errorf("encode changes: %w", err)
				}
			}
			if err := s.appendEvent(ctx, tx, kind, p); err != nil {
				return 0, err
			}
			events++
		}
		uID[i], uTitle[i], uSummary[i], uSev[i] = st.ID, st.Title, st.Summary, string(st.Severity)
		uRank[i], uScore[i], uAlerts[i] = int32(st.Severity.Rank()), int32(st.Score), int32(st.AlertCount)
		uDev[i], uUsers[i], uSeq[i], uExpert[i] = int32(st.DeviceCount), int32(st.UserCount), int32(st.Seq), st.Expert
		if uBreak[i], err = json.Marshal(st.Breakdown); err != nil {
			return 0, fmt.Errorf("encode breakdown: %w", err)
		}
		if st.Notified != nil {
			if uSnap[i], err = json.Marshal(st.Notified); err != nil {
				return 0, fmt.Errorf("encode snapshot: %w", err)
			}
		}
		uTactics[i] = strings.Join(st.Tactics, ",")
		uFirst[i], uLast[i] = nilTime(st.FirstActivity), nilTime(st.LastActivity)
		uElig[i], uPosted[i], uNotified[i], uDue[i] = st.EligibleAt, st.PostedAt, st.NotifiedAt, st.NextDue
	}
	_, err = tx.Exec(ctx, `
UPDATE hunting_incidents i SET title = x.title, summary = x.summary, severity = x.sev, severity_rank = x.rank,
    score = x.score, breakdown = x.brk, expert = x.exp, alert_count = x.alerts, device_count = x.dev,
    user_count = x.users, tactics = CASE WHEN x.tac = '' THEN '{}'::text[] ELSE string_to_array(x.tac, ',') END,
    first_activity = x.fa, last_activity = x.la, eligible_at = x.elig, posted_at = x.posted,
    notified_at = x.notified, notified = x.snap, notify_seq = x.seq, next_due_at = x.due, updated_at = $1,
    last_changes = coalesce(x.chg, i.last_changes)
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::jsonb[], $9::bool[],
    $10::int[], $11::int[], $12::int[], $13::text[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[],
    $17::timestamptz[], $18::timestamptz[], $19::jsonb[], $20::int[], $21::timestamptz[], $22::jsonb[])
    AS x(id, title, summary, sev, rank, score, brk, exp, alerts, dev, users, tac, fa, la, elig, posted, notified, snap, seq, due, chg)
WHERE i.id = x.id`,
		now, uID, uTitle, uSummary, uSev, uRank, uScore, uBreak, uExpert, uAlerts, uDev, uUsers, uTactics,
		uFirst, uLast, uElig, uPosted, uNotified, uSnap, uSeq, uDue, uChanges)
	if err != nil {
		return 0, fmt.Errorf("update %d incidents: %w", n, err)
	}
	return events, nil
}

func nilTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// loadStates reads the incidents' notification state and aggregates their
// alerts and entities in one round trip, then scores them.
func (s *Service) loadStates(ctx context.Context, tx pgx.Tx, org string, ids []int64, now time.Time) ([]*incState, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT id, status, eligible_at, posted_at, notified_at, acked_at, notified, notify_seq
FROM hunting_incidents WHERE org = $1 AND id = ANY($2) ORDER BY id`, org, ids)
	b.Queue(`SELECT incident_id, count(*), max(severity_rank), count(*) FILTER (WHERE severity_rank >= 2), bool_or(expert),
    min(first_activity), max(coalesce(last_activity, first_activity))
FROM hunting_alerts WHERE incident_id = ANY($1) GROUP BY incident_id`, ids)
	b.Queue(`SELECT incident_id, tactic, min(first_activity) FROM hunting_alerts
WHERE incident_id = ANY($1) AND tactic <> '' GROUP BY incident_id, tactic`, ids)
	b.Queue(`SELECT incident_id, kind, count(*), (array_agg(display ORDER BY first_seen, value))[1:$2]
FROM hunting_incident_entities WHERE incident_id = ANY($1) AND kind IN ('device', 'user') GROUP BY incident_id, kind`, ids, maxSnapshotNames)
	b.Queue(`SELECT ie.incident_id, count(*) FROM hunting_incident_entities ie
WHERE ie.incident_id = ANY($1) AND ie.kind = 'file' AND ie.join_key
  AND (SELECT count(*) FROM hunting_entity_devices d
       WHERE d.org = ie.org AND d.kind = 'file' AND d.value = ie.value) <= 2
GROUP BY ie.incident_id`, ids)
	b.Queue(`SELECT DISTINCT ON (incident_id) incident_id, title, threat_family
FROM hunting_alerts WHERE incident_id = ANY($1)
ORDER BY incident_id, expert DESC, severity_rank DESC, first_activity, id`, ids)
	br := tx.SendBatch(ctx, b)
	defer br.Close()

	byID := map[int64]*incState{}
	var sts []*incState
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("load incidents: %w", err)
	}
	for rows.Next() {
		st := &incState{Org: org}
		var snap []byte
		var seq int32
		if err := rows.Scan(&st.ID, &st.Status, &st.EligibleAt, &st.PostedAt, &st.NotifiedAt, &st.AckedAt, &snap, &seq); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan incident: %w", err)
		}
		st.Seq = int(seq)
		if len(snap) > 0 {
			st.Notified = &snapshot{}
			if err := json.Unmarshal(snap, st.Notified); err != nil {
				rows.Close()
				return nil, fmt.Errorf("decode snapshot of incident %d: %w", st.ID, err)
			}
		}
		byID[st.ID] = st
		sts = append(sts, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load incidents: %w", err)
	}
	in := map[int64]*scoreInput{}
	for _, st := range sts {
		in[st.ID] = &scoreInput{}
	}
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("aggregate alerts: %w", err)
	}
	for rows.Next() {
		var id int64
		var cnt, mp int64
		var rank int16
		var exp bool
		var fa, la time.Time
		if err := rows.Scan(&id, &cnt, &rank, &mp, &exp, &fa, &la); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan alert aggregate: %w", err)
		}
		if st := byID[id]; st != nil {
			st.AlertCount, st.Severity, st.Expert, st.FirstActivity, st.LastActivity = int(cnt), severityFromRank(int(rank)), exp, fa, la
			si := in[id]
			si.Alerts, si.MaxSeverity, si.MediumPlus, si.Expert, si.LastActivity = int(cnt), st.Severity, int(mp), exp, la
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("aggregate alerts: %w", err)
	}
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("aggregate tactics: %w", err)
	}
	for rows.Next() {
		var id int64
		var t tacticSeen
		if err := rows.Scan(&id, &t.ID, &t.First); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan tactic: %w", err)
		}
		if st := byID[id]; st != nil {
			st.tacticSeen = append(st.tacticSeen, t)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("aggregate tactics: %w", err)
	}
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("aggregate entities: %w", err)
	}
	for rows.Next() {
		var id, cnt int64
		var kind string
		var names []string
		if err := rows.Scan(&id, &kind, &cnt, &names); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan entity aggregate: %w", err)
		}
		if st := byID[id]; st != nil {
			if kind == string(EntityDevice) {
				st.DeviceCount, st.DeviceNames = int(cnt), names
			} else {
				st.UserCount, st.UserNames = int(cnt), names
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("aggregate entities: %w", err)
	}
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("count rare files: %w", err)
	}
	for rows.Next() {
		var id, cnt int64
		if err := rows.Scan(&id, &cnt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan rare files: %w", err)
		}
		if si := in[id]; si != nil {
			si.RareFiles = int(cnt)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count rare files: %w", err)
	}
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("pick titles: %w", err)
	}
	type tf struct{ title, family string }
	titles := map[int64]tf{}
	for rows.Next() {
		var id int64
		var t tf
		if err := rows.Scan(&id, &t.title, &t.family); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan title: %w", err)
		}
		titles[id] = t
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pick titles: %w", err)
	}
	for _, st := range sts {
		slices.SortFunc(st.tacticSeen, func(a, b tacticSeen) int { return a.First.Compare(b.First) })
		st.Tactics = st.Tactics[:0]
		for _, t := range st.tacticSeen {
			st.Tactics = append(st.Tactics, t.ID)
		}
		si := in[st.ID]
		si.Tactics, si.Devices, si.Users = st.tacticSeen, st.DeviceCount, st.UserCount
		st.Score, st.Breakdown = score(*si, now)
		first := ""
		if len(st.DeviceNames) > 0 {
			first = st.DeviceNames[0]
		}
		t := titles[st.ID]
		st.Title = titleFor(t.title, t.family, st.Expert, len(st.Tactics), st.DeviceCount, first)
		st.Summary = summaryFor(st)
	}
	return sts, nil
}

// Sweep runs the scheduled notification pass once: every open incident
// whose group_wait, group_interval or repeat is due is re-scored and its
// notification recorded. Rows are claimed with FOR UPDATE SKIP LOCKED and
// moved on in the same transaction as their outbox rows, so two replicas
// sweeping at once never notify twice. It returns the events recorded.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	start := time.Now()
	defer func() { s.m.sweepDur.Observe(time.Since(start).Seconds()) }()
	total := 0
	for {
		now := s.cfg.Now().UTC()
		var n, claimed int
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `
SELECT id, org FROM hunting_incidents
WHERE status = 'open' AND next_due_at <= $1
ORDER BY next_due_at LIMIT 100 FOR UPDATE SKIP LOCKED`, now)
			if err != nil {
				return fmt.Errorf("claim due incidents: %w", err)
			}
			byOrg := map[string][]int64{}
			for rows.Next() {
				var id int64
				var org string
				if err := rows.Scan(&id, &org); err != nil {
					rows.Close()
					return fmt.Errorf("scan due incident: %w", err)
				}
				byOrg[org] = append(byOrg[org], id)
				claimed++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("claim due incidents: %w", err)
			}
			for org, ids := range byOrg {
				k, err := s.refresh(ctx, tx, org, ids, now)
				if err != nil {
					return fmt.Errorf("sweep org %s: %w", org, err)
				}
				n += k
			}
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("hunting: sweep: %w", err)
		}
		total += n
		if claimed < 100 {
			return total, nil
		}
	}
}

// ErrNotFound is returned for an incident, alert, device or file that does
// not exist in the org (another org's item is not found either).
var ErrNotFound = errors.New("hunting: not found")

// Acknowledge records who acknowledged the incident, which stops its
// repeats, and records incident.acknowledged so the card shows it. A second
// acknowledgement keeps the first and records nothing.
func (s *Service) Acknowledge(ctx context.Context, org string, incidentID int64, who string) error {
	who = clip(who, maxShortLen)
	now := s.cfg.Now().UTC()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var st incState
		err := tx.QueryRow(ctx, `SELECT id, status, acked_at, title, severity, score, expert, notify_seq FROM hunting_incidents
WHERE org = $1 AND id = $2 FOR UPDATE`, org, incidentID).Scan(&st.ID, &st.Status, &st.AckedAt, &st.Title, &st.Severity, &st.Score, &st.Expert, &st.Seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("acknowledge incident %d of org %s: %w", incidentID, org, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("acknowledge incident %d: %w", incidentID, err)
		}
		if st.AckedAt != nil {
			return nil
		}
		// Repeats stop; a pending first post or update still goes out.
		if _, err := tx.Exec(ctx, `
UPDATE hunting_incidents SET acked_by = $2, acked_at = $3, updated_at = $3,
    next_due_at = CASE WHEN posted_at IS NULL OR notified IS NULL THEN next_due_at
                       WHEN next_due_at = notified_at + $4::interval THEN NULL ELSE next_due_at END
WHERE id = $1`, incidentID, who, now, s.cfg.RepeatInterval); err != nil {
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
		st.Org = org
		p := s.payload(&st, now)
		p.By = clip(who, maxShortLen)
		return s.appendEvent(ctx, tx, EventClosed, p)
	})
}

type stopper interface{ Shutdown() error }

// Start schedules the sweep every SweepInterval under a Postgres advisory
// lock (one replica at a time). Stop ends it.
func (s *Service) Start(ctx context.Context) error {
	if s.sched != nil {
		return errors.New("hunting: already started")
	}
	sch, err := gocron.NewScheduler(gocron.WithDistributedLocker(cronlock.New(s.pool, "threatdesk")))
	if err != nil {
		return fmt.Errorf("hunting: scheduler: %w", err)
	}
	_, err = sch.NewJob(gocron.DurationJob(s.cfg.SweepInterval),
		gocron.NewTask(func() {
			if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("notification sweep failed", "err", err)
			}
		}),
		gocron.WithName("hunting-sweep"),
		gocron.WithSingletonMode(gocron.LimitModeReschedule))
	if err != nil {
		_ = sch.Shutdown()
		return fmt.Errorf("hunting: schedule sweep: %w", err)
	}
	sch.Start()
	s.sched = sch
	return nil
}

// Stop stops the scheduled sweep; it is safe to call more than once.
func (s *Service) Stop() error {
	if s.sched == nil {
		return nil
	}
	err := s.sched.Shutdown()
	s.sched = nil
	if err != nil {
		return fmt.Errorf("hunting: stop scheduler: %w", err)
	}
	return nil
}
