package hunting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// incState is an incident's stored state and aggregates. Aggregates are
// folded in batch by batch (fold, absorb), never recomputed from all the
// incident's alerts, so that a 2,000-alert incident costs the same per batch
// as a small one.
type incState struct {
	ID                   int64
	Org                  string
	Status               string
	EligibleAt, PostedAt *time.Time
	NotifiedAt, AckedAt  *time.Time
	Notified             *snapshot
	Seq                  int
	NextDue              *time.Time

	Title, Summary         string
	Severity               Severity
	Score                  int
	Breakdown              []Reason
	Expert                 bool
	AlertCount, MediumPlus int
	RareFiles              int
	Impact, Commodity      int
	ImpactDetail           string
	ResolvedAlerts         int
	// Classification and ResolvedBy are set when the incident is resolved
	// (Resolve, or every alert resolved upstream).
	Classification Classification
	ResolvedBy     string
	// forced: a person (notifyBy) asked for the post (NotifyNow), whatever
	// the score.
	forced   bool
	notifyBy string
	// Follows is the closed incident this one follows.
	Follows                     int64
	DeviceCount, UserCount      int
	DeviceNames, UserNames      []string
	Tactics                     []string
	tacticSeen                  []tacticSeen
	FirstActivity, LastActivity time.Time
	titleRank                   int
	titleBase, titleFamily      string
	titleTime                   time.Time

	changes []Change // set when the latest evaluation sent an update
	// storedBreakdown is the breakdown as loaded (JSON), decoded only when
	// a sweep needs to tell whether a re-score changed anything.
	storedBreakdown []byte
}

const incidentCols = `id, status, eligible_at, posted_at, notified_at, acked_at, notified, notify_seq,
    severity, expert, alert_count, medium_plus, rare_files, device_count, user_count, device_names, user_names,
    tactics, tactic_first, first_activity, last_activity, title_rank, title_base, title_family, title_time,
    impact, impact_detail, commodity, resolved_alerts, coalesce(follows, 0), classification, next_due_at`

// The score as stored, which only a sweep compares with its re-score
// (ingest recomputes it from the aggregates and skips reading it).
const (
	scoreCols   = `, score, title, summary, breakdown`
	noScoreCols = `, 0, '', '', NULL::jsonb`
)

func scanIncident(row pgx.Row, org string) (*incState, error) {
	st := &incState{Org: org}
	var snap []byte
	var seq, alerts, mp, rare, devs, users, trank, score, impact, commodity, resolved int32
	var firsts []time.Time
	var fa, la, tt *time.Time
	if err := row.Scan(&st.ID, &st.Status, &st.EligibleAt, &st.PostedAt, &st.NotifiedAt, &st.AckedAt, &snap, &seq,
		&st.Severity, &st.Expert, &alerts, &mp, &rare, &devs, &users, &st.DeviceNames, &st.UserNames,
		&st.Tactics, &firsts, &fa, &la, &trank, &st.titleBase, &st.titleFamily, &tt,
		&impact, &st.ImpactDetail, &commodity, &resolved, &st.Follows, &st.Classification, &st.NextDue,
		&score, &st.Title, &st.Summary, &st.storedBreakdown); err != nil {
		return nil, err
	}
	st.Seq, st.AlertCount, st.MediumPlus, st.RareFiles, st.Score = int(seq), int(alerts), int(mp), int(rare), int(score)
	st.DeviceCount, st.UserCount, st.titleRank = int(devs), int(users), int(trank)
	st.Impact, st.Commodity, st.ResolvedAlerts = int(impact), int(commodity), int(resolved)
	if fa != nil {
		st.FirstActivity = *fa
	}
	if la != nil {
		st.LastActivity = *la
	}
	if tt != nil {
		st.titleTime = *tt
	}
	for i, t := range st.Tactics {
		ts := tacticSeen{ID: t}
		if i < len(firsts) {
			ts.First = firsts[i]
		}
		st.tacticSeen = append(st.tacticSeen, ts)
	}
	if len(snap) > 0 {
		st.Notified = &snapshot{}
		if err := json.Unmarshal(snap, st.Notified); err != nil {
			return nil, fmt.Errorf("decode snapshot of incident %d: %w", st.ID, err)
		}
	}
	return st, nil
}

// loadStates reads the incidents. The caller holds the org's lock (lockOrg),
// which every writer of an org's incidents takes, so the rows need no row
// locks of their own: a FOR UPDATE would write a lock into every row (a WAL
// record and a dirtied page each) just before the batch rewrites it. With
// due set, only open incidents due by then are returned (the sweep's
// re-check under lock). scored also reads the stored score, title, summary
// and breakdown.
func loadStates(ctx context.Context, tx pgx.Tx, org string, ids []int64, due *time.Time, scored bool) ([]*incState, error) {
	args := []any{org, ids}
	if due != nil {
		args = append(args, *due)
	}
	rows, err := tx.Query(ctx, loadStatesSQL(due != nil, scored), args...)
	if err != nil {
		return nil, fmt.Errorf("load incidents: %w", err)
	}
	defer rows.Close()
	var out []*incState
	for rows.Next() {
		st, err := scanIncident(rows, org)
		if err != nil {
			return nil, fmt.Errorf("load incidents: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load incidents: %w", err)
	}
	return out, nil
}

// loadStatesSQL reads the incidents of org $1 with the ids $2 (and, with
// due, only the open ones due by $3): one primary-key probe per id,
// whatever the planner's statistics say. As "org = $1 AND id = ANY($2)" it
// could be planned, with statistics taken while the org was small, as a
// scan of the org's entries in hunting_incidents_org_idx. The org is
// checked outside the lateral lookup: inside, it may lead the planner to
// an index on the org again. An id asked twice is read once, as with ANY.
func loadStatesSQL(due, scored bool) string {
	cols := incidentCols + noScoreCols
	if scored {
		cols = incidentCols + scoreCols
	}
	q := `SELECT ` + cols + ` FROM (SELECT DISTINCT unnest($2::bigint[])) AS want(inc)
CROSS JOIN LATERAL (SELECT * FROM hunting_incidents i WHERE i.id = want.inc LIMIT 1) hunting_incidents
WHERE org = $1`
	if due {
		q += ` AND status = 'open' AND next_due_at <= $3`
	}
	return q + ` ORDER BY id`
}

func (st *incState) seeTactic(id string, t time.Time) {
	for i := range st.tacticSeen {
		if st.tacticSeen[i].ID == id {
			if t.Before(st.tacticSeen[i].First) {
				st.tacticSeen[i].First = t
			}
			return
		}
	}
	st.tacticSeen = append(st.tacticSeen, tacticSeen{ID: id, First: t})
}

// seeTitle keeps the title of the highest rank (the earliest on a tie);
// rank -1 (a benign alert's) only names an incident that has no title.
func (st *incState) seeTitle(rank int, base, family string, t time.Time) {
	if rank > st.titleRank || rank == st.titleRank && (t.Before(st.titleTime) || st.titleTime.IsZero()) {
		st.titleRank, st.titleBase, st.titleFamily, st.titleTime = rank, base, family, t
	}
}

// seeImpact keeps the heaviest impact (the first seen on a tie).
func (st *incState) seeImpact(pts int, what string) {
	if pts > st.Impact {
		st.Impact, st.ImpactDetail = pts, what
	}
}

func (st *incState) seeActivity(first, last time.Time) {
	if !first.IsZero() && (st.FirstActivity.IsZero() || first.Before(st.FirstActivity)) {
		st.FirstActivity = first
	}
	if last.After(st.LastActivity) {
		st.LastActivity = last
	}
}

// fold adds one alert of a batch. A re-posted alert (isNew false) is not
// counted again; severity, tactics, impact and the expert flag only grow
// here (an update that lowers them recomputes the incident instead). An
// alert classified upstream as a false positive or expected activity is
// counted, but says nothing of an attack: it adds no severity, tactic or
// impact.
func (st *incState) fold(a *Alert, isNew bool) {
	r := a.Severity.Rank()
	pts, what, commodity := impactOf(a)
	benign := a.benign()
	if isNew {
		st.AlertCount++
		if r >= SeverityMedium.Rank() && !benign {
			st.MediumPlus++
		}
		// Commodity counts the alerts that say nothing of an attack:
		// commodity detections and alerts found benign upstream.
		if commodity || benign {
			st.Commodity++
		}
		if a.resolved() {
			st.ResolvedAlerts++
		}
	}
	st.seeActivity(a.when(), maxTime(a.when(), a.LastActivity))
	rank := r
	if a.Expert {
		rank += 10
	}
	if benign {
		// An alert found benign names the incident only while no other
		// does: an expected-activity alert must not retitle an attack.
		rank = -1
	}
	st.seeTitle(rank, a.Title, a.ThreatFamily, a.when())
	if benign {
		return
	}
	// An expert alert found benign upstream flags nothing.
	st.Expert = st.Expert || a.Expert
	if r > st.Severity.Rank() || st.Severity == "" {
		st.Severity = a.Severity
	}
	if a.Tactic != "" {
		st.seeTactic(a.Tactic, a.when())
	}
	st.seeImpact(pts, what)
}

// absorb folds a merged incident's aggregates into st. Device and user
// counts are recounted by the caller (a union is not a sum). A merged
// incident that had a card hands it on: the survivor, if it had none, is
// posted at once (the old card now says to follow it), and an
// acknowledgement carries over when every card handed on had one
// (applyFoldAlerts; queueMerges stores it).
func (st *incState) absorb(o *incState) {
	if o.PostedAt != nil && st.PostedAt == nil {
		st.forced = true
		if st.AckedAt == nil {
			st.AckedAt = o.AckedAt
		}
	}
	st.AlertCount += o.AlertCount
	st.MediumPlus += o.MediumPlus
	st.RareFiles += o.RareFiles
	st.Commodity += o.Commodity
	st.ResolvedAlerts += o.ResolvedAlerts
	st.seeImpact(o.Impact, o.ImpactDetail)
	if o.Severity.Rank() > st.Severity.Rank() {
		st.Severity = o.Severity
	}
	st.Expert = st.Expert || o.Expert
	st.seeActivity(o.FirstActivity, o.LastActivity)
	for _, t := range o.tacticSeen {
		st.seeTactic(t.ID, t.First)
	}
	if o.titleRank >= 0 {
		st.seeTitle(o.titleRank, o.titleBase, o.titleFamily, o.titleTime)
	}
}

// newEntity is an entity that was new to its incident in this batch.
type newEntity struct {
	inc     int64
	kind    EntityKind
	value   string
	display string
	join    bool
}

// batchFold is what a batch adds to its incidents.
type batchFold struct {
	alerts   map[int64][]*work
	entities map[int64][]newEntity
	// absorbed: survivor -> the incidents merged into it.
	absorbed map[int64][]*incState
	// recount: survivors whose device/user counts are recounted.
	recount map[int64]bool
	// rare: files seen on at most two devices.
	rare map[ekey]bool
	// posted: merged incidents, and whether they had a card.
	posted map[int64]bool
	// recompute: incidents one of whose alerts changed status,
	// classification, severity or category upstream: their aggregates are
	// recomputed from their alerts.
	recompute map[int64]bool
}

// rescore recomputes score, title and summary from the aggregates; bar is
// the org's notification score.
func (st *incState) rescore(now time.Time, bar int) {
	slices.SortFunc(st.tacticSeen, func(a, b tacticSeen) int { return a.First.Compare(b.First) })
	st.Tactics = st.Tactics[:0]
	for _, t := range st.tacticSeen {
		st.Tactics = append(st.Tactics, t.ID)
	}
	if st.Severity == "" {
		st.Severity = SeverityInformational
	}
	st.Score, st.Breakdown = score(scoreInput{
		MaxSeverity: st.Severity, MediumPlus: st.MediumPlus, Alerts: st.AlertCount, Tactics: st.tacticSeen,
		Impact: st.Impact, ImpactDetail: st.ImpactDetail, Commodity: st.Commodity, Bar: bar,
		Expert: st.Expert, RareFiles: st.RareFiles, Devices: st.DeviceCount, Users: st.UserCount, LastActivity: st.LastActivity,
	}, now)
	first := ""
	if len(st.DeviceNames) > 0 {
		first = st.DeviceNames[0]
	}
	st.Title = titleFor(st.titleBase, st.titleFamily, st.Expert, len(st.Tactics), st.DeviceCount, first)
	st.Summary = summaryFor(st)
}

// refresh folds a batch into its incidents (fold nil: a sweep), re-scores
// them, applies the notification policy, records due events and writes the
// incidents back, all in tx.
func (s *Service) refresh(ctx context.Context, tx pgx.Tx, sts []*incState, fold *batchFold, now time.Time) (int, error) {
	if len(sts) == 0 {
		return 0, nil
	}
	if fold != nil {
		if err := s.applyFold(ctx, tx, sts, fold); err != nil {
			return 0, err
		}
	}
	events := 0
	// The outbox rows and the incidents' write-back go to the server as one
	// pipeline, not two round trips per event.
	pt := newPipeTx(tx)
	if fold != nil {
		n, err := s.autoResolve(ctx, tx, pt, sts, now)
		if err != nil {
			return 0, err
		}
		events += n
	}
	var touch []int64
	full := sts[:0:0]
	for _, st := range sts {
		var was stateKey
		if fold == nil {
			was = st.key(true)
		}
		st.rescore(now, s.liveConfig().notifyScore(st.Org))
		kind, changes := s.evaluate(now, st)
		st.changes = nil
		if kind == "" {
			// A sweep's re-score that changed nothing (the recency part of
			// a score moves in steps) only marks the incident as re-scored.
			if fold == nil && st.key(false).equal(was) {
				touch = append(touch, st.ID)
			} else {
				full = append(full, st)
			}
			continue
		}
		full = append(full, st)
		p := s.payload(st, now)
		if kind == EventUpdate {
			if len(changes) > 0 { // else the card alone is redrawn
				p.Changes, p.Note = changes, noteFor(changes)
			}
			st.changes = changes
		}
		if err := s.appendEvent(ctx, pt, kind, p); err != nil {
			return 0, err
		}
		events++
	}
	if err := queueStates(pt.b, full, now); err != nil {
		return 0, err
	}
	if len(touch) > 0 {
		pt.b.Queue(`UPDATE hunting_incidents SET updated_at = $1 WHERE id = ANY($2)`, now, touch)
	}
	if err := tx.SendBatch(ctx, pt.b).Close(); err != nil {
		return 0, fmt.Errorf("record %d events and update %d incidents: %w", events, len(sts), err)
	}
	return events, nil
}

// stateKey is what a re-score and the policy may change on an incident.
type stateKey struct {
	score                           int
	breakdown                       []Reason
	title, summary                  string
	severity                        Severity
	due, eligible, posted, notified *time.Time
	seq                             int
	tactics                         string
}

// key is the incident's stateKey; stored takes the breakdown as loaded.
func (st *incState) key(stored bool) stateKey {
	brk := slices.Clone(st.Breakdown)
	if stored {
		brk = nil
		if err := json.Unmarshal(st.storedBreakdown, &brk); err != nil {
			brk = []Reason{{Factor: "undecodable"}} // compares unequal: written in full
		}
	}
	return stateKey{score: st.Score, breakdown: brk, title: st.Title, summary: st.Summary,
		severity: st.Severity, due: st.NextDue, eligible: st.EligibleAt, posted: st.PostedAt, notified: st.NotifiedAt,
		seq: st.Seq, tactics: strings.Join(st.Tactics, ",")}
}

func (k stateKey) equal(o stateKey) bool {
	eqT := func(a, b *time.Time) bool { return a == nil && b == nil || a != nil && b != nil && a.Equal(*b) }
	return k.score == o.score && slices.Equal(k.breakdown, o.breakdown) && k.title == o.title && k.summary == o.summary &&
		k.severity == o.severity && eqT(k.due, o.due) && eqT(k.eligible, o.eligible) && eqT(k.posted, o.posted) &&
		eqT(k.notified, o.notified) && k.seq == o.seq && k.tactics == o.tactics
}

func (s *Service) applyFold(ctx context.Context, tx pgx.Tx, sts []*incState, fold *batchFold) error {
	if err := s.applyFoldAlerts(ctx, tx, sts, fold); err != nil {
		return err
	}
	var re []*incState
	for _, st := range sts {
		if fold.recompute[st.ID] {
			re = append(re, st)
		}
	}
	return recompute(ctx, tx, re)
}

// recompute rebuilds the alert aggregates of incidents from their stored
// alerts, after an upstream change (a status, a classification, a lower
// severity) that folding cannot express.
func recompute(ctx context.Context, tx pgx.Tx, sts []*incState) error {
	if len(sts) == 0 {
		return nil
	}
	byID := map[int64]*incState{}
	ids := make([]int64, len(sts))
	type kept struct {
		rank        int
		base, fam   string
		t, fa, last time.Time
	}
	was := make([]kept, len(sts))
	for i, st := range sts {
		byID[st.ID], ids[i] = st, st.ID
		st.AlertCount, st.MediumPlus, st.Commodity, st.ResolvedAlerts = 0, 0, 0, 0
		st.Impact, st.ImpactDetail, st.Severity, st.tacticSeen, st.Expert = 0, "", "", nil, false
		// The title and the activity span come from the alerts it holds
		// now (one that moved on to a new incident takes its own along);
		// an incident left with none keeps its own.
		was[i] = kept{st.titleRank, st.titleBase, st.titleFamily, st.titleTime, st.FirstActivity, st.LastActivity}
		st.titleRank, st.titleTime, st.FirstActivity, st.LastActivity = -1, time.Time{}, time.Time{}, time.Time{}
	}
	defer func() {
		for i, st := range sts {
			if st.AlertCount == 0 {
				w := was[i]
				st.titleRank, st.titleBase, st.titleFamily, st.titleTime, st.FirstActivity, st.LastActivity = w.rank, w.base, w.fam, w.t, w.fa, w.last
			}
		}
	}()
	rows, err := tx.Query(ctx, `
SELECT incident_id, severity, category, tactic, threat_family, title, detection_source, expert, status, classification,
    first_activity, coalesce(last_activity, first_activity)
FROM hunting_alerts WHERE incident_id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("recompute incidents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var a Alert
		if err := rows.Scan(&id, &a.Severity, &a.Category, &a.Tactic, &a.ThreatFamily, &a.Title, &a.DetectionSource, &a.Expert,
			&a.Status, &a.Classification, &a.FirstActivity, &a.LastActivity); err != nil {
			return fmt.Errorf("recompute incidents: %w", err)
		}
		byID[id].fold(&a, true)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("recompute incidents: %w", err)
	}
	return nil
}

// applyFoldAlerts folds the batch's alerts, merged incidents and new
// entities into the incidents.
func (s *Service) applyFoldAlerts(ctx context.Context, tx pgx.Tx, sts []*incState, fold *batchFold) error {
	var recount []int64
	for _, st := range sts {
		for _, o := range fold.absorbed[st.ID] {
			st.absorb(o)
		}
		// A card handed on carries its acknowledgement only when every
		// card handed on was acknowledged, and one still unacknowledged
		// makes the survivor unacknowledged: its reminders go on
		// (queueMerges does the same in SQL).
		if slices.ContainsFunc(fold.absorbed[st.ID], func(o *incState) bool { return o.PostedAt != nil && o.AckedAt == nil }) {
			st.AckedAt = nil
		}
		for _, w := range fold.alerts[st.ID] {
			st.fold(w.a, !w.update)
			if w.update && w.a.resolved() != w.wasResolved {
				if w.wasResolved {
					st.ResolvedAlerts--
				} else {
					st.ResolvedAlerts++
				}
			}
		}
		if fold.recount[st.ID] {
			recount = append(recount, st.ID)
			continue
		}
		for _, e := range fold.entities[st.ID] {
			switch e.kind {
			case EntityDevice:
				st.DeviceCount++
				if len(st.DeviceNames) < maxSnapshotNames {
					st.DeviceNames = append(st.DeviceNames, e.display)
				}
			case EntityUser:
				st.UserCount++
				if len(st.UserNames) < maxSnapshotNames {
					st.UserNames = append(st.UserNames, e.display)
				}
			case EntityFile:
				if e.join && fold.rare[ekey{string(e.kind), e.value}] {
					st.RareFiles++
				}
			}
		}
	}
	if len(recount) == 0 {
		return nil
	}
	byID := map[int64]*incState{}
	for _, st := range sts {
		if fold.recount[st.ID] {
			st.DeviceCount, st.UserCount, st.DeviceNames, st.UserNames = 0, 0, nil, nil
			byID[st.ID] = st
		}
	}
	rows, err := tx.Query(ctx, `
SELECT incident_id, kind, count(*), (array_agg(display ORDER BY first_seen, value))[1:$2]
FROM hunting_incident_entities WHERE incident_id = ANY($1) AND kind IN ('device', 'user')
GROUP BY incident_id, kind`, recount, maxSnapshotNames)
	if err != nil {
		return fmt.Errorf("recount merged incidents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, n int64
		var kind string
		var names []string
		if err := rows.Scan(&id, &kind, &n, &names); err != nil {
			return fmt.Errorf("recount merged incidents: %w", err)
		}
		st := byID[id]
		if kind == string(EntityDevice) {
			st.DeviceCount, st.DeviceNames = int(n), names
		} else {
			st.UserCount, st.UserNames = int(n), names
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("recount merged incidents: %w", err)
	}
	return nil
}

// queueStates queues the write-back of the incidents.
func queueStates(b *pgx.Batch, sts []*incState, now time.Time) error {
	n := len(sts)
	if n == 0 {
		return nil
	}
	var (
		uID                       = make([]int64, n)
		uTitle, uSummary, uSev    = mk(n), mk(n), mk(n)
		uRank, uScore, uAlerts    = make([]int32, n), make([]int32, n), make([]int32, n)
		uDev, uUsers, uSeq        = make([]int32, n), make([]int32, n), make([]int32, n)
		uMP, uRare, uTRank        = make([]int32, n), make([]int32, n), make([]int32, n)
		uBreak, uSnap, uChanges   = make([][]byte, n), make([][]byte, n), make([][]byte, n)
		uExpert                   = make([]bool, n)
		uTactics, uFirsts         = mk(n), mk(n)
		uDevNames, uUserNames     = mk(n), mk(n)
		uTBase, uTFam             = mk(n), mk(n)
		uFirst, uLast, uTTime     = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		uElig, uPosted, uNotified = make([]*time.Time, n), make([]*time.Time, n), make([]*time.Time, n)
		uDue                      = make([]*time.Time, n)
		uImpact, uComm, uResolved = make([]int32, n), make([]int32, n), make([]int32, n)
		uImpactDetail             = mk(n)
	)
	var err error
	for i, st := range sts {
		uID[i], uTitle[i], uSummary[i], uSev[i] = st.ID, st.Title, st.Summary, string(st.Severity)
		uRank[i], uScore[i], uAlerts[i] = int32(st.Severity.Rank()), int32(st.Score), int32(st.AlertCount)
		uDev[i], uUsers[i], uSeq[i], uExpert[i] = int32(st.DeviceCount), int32(st.UserCount), int32(st.Seq), st.Expert
		uMP[i], uRare[i], uTRank[i] = int32(st.MediumPlus), int32(st.RareFiles), int32(st.titleRank)
		if uBreak[i], err = json.Marshal(st.Breakdown); err != nil {
			return fmt.Errorf("encode breakdown: %w", err)
		}
		if st.Notified != nil {
			if uSnap[i], err = json.Marshal(st.Notified); err != nil {
				return fmt.Errorf("encode snapshot: %w", err)
			}
		}
		if st.changes != nil {
			if uChanges[i], err = json.Marshal(st.changes); err != nil {
				return fmt.Errorf("encode changes: %w", err)
			}
		}
		firsts := make([]string, len(st.tacticSeen))
		for j, t := range st.tacticSeen {
			firsts[j] = t.First.UTC().Format(time.RFC3339Nano)
		}
		uTactics[i], uFirsts[i] = strings.Join(st.Tactics, ","), strings.Join(firsts, ",")
		uDevNames[i], uUserNames[i] = encodeNames(st.DeviceNames), encodeNames(st.UserNames)
		uTBase[i], uTFam[i] = st.titleBase, st.titleFamily
		uFirst[i], uLast[i], uTTime[i] = nilTime(st.FirstActivity), nilTime(st.LastActivity), nilTime(st.titleTime)
		uElig[i], uPosted[i], uNotified[i], uDue[i] = st.EligibleAt, st.PostedAt, st.NotifiedAt, st.NextDue
		uImpact[i], uImpactDetail[i], uComm[i], uResolved[i] = int32(st.Impact), st.ImpactDetail, int32(st.Commodity), int32(st.ResolvedAlerts)
	}
	b.Queue(`
UPDATE hunting_incidents i SET title = x.title, summary = x.summary, severity = x.sev, severity_rank = x.rank,
    score = x.score, breakdown = x.brk, expert = x.exp, alert_count = x.alerts, device_count = x.dev,
    user_count = x.users, medium_plus = x.mp, rare_files = x.rare,
    tactics = CASE WHEN x.tac = '' THEN '{}'::text[] ELSE string_to_array(x.tac, ',') END,
    tactic_first = CASE WHEN x.tf = '' THEN '{}'::timestamptz[] ELSE string_to_array(x.tf, ',')::timestamptz[] END,
    device_names = x.dn::text[], user_names = x.un::text[],
    first_activity = x.fa, last_activity = x.la, eligible_at = x.elig, posted_at = x.posted,
    notified_at = x.notified, notified = x.snap, notify_seq = x.seq, next_due_at = x.due, updated_at = $1,
    last_changes = coalesce(x.chg, i.last_changes), title_rank = x.trank, title_base = x.tbase,
    title_family = x.tfam, title_time = x.ttime, impact = x.imp, impact_detail = x.impd, commodity = x.comm,
    resolved_alerts = x.resolved
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[], $8::jsonb[], $9::bool[],
    $10::int[], $11::int[], $12::int[], $13::text[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[],
    $17::timestamptz[], $18::timestamptz[], $19::jsonb[], $20::int[], $21::timestamptz[], $22::jsonb[],
    $23::int[], $24::int[], $25::text[], $26::text[], $27::text[], $28::int[], $29::text[], $30::text[], $31::timestamptz[],
    $32::int[], $33::text[], $34::int[], $35::int[])
    AS x(id, title, summary, sev, rank, score, brk, exp, alerts, dev, users, tac, fa, la, elig, posted, notified,
         snap, seq, due, chg, mp, rare, tf, dn, un, trank, tbase, tfam, ttime, imp, impd, comm, resolved)
WHERE i.id = x.id`,
		now, uID, uTitle, uSummary, uSev, uRank, uScore, uBreak, uExpert, uAlerts, uDev, uUsers, uTactics,
		uFirst, uLast, uElig, uPosted, uNotified, uSnap, uSeq, uDue, uChanges,
		uMP, uRare, uFirsts, uDevNames, uUserNames, uTRank, uTBase, uTFam, uTTime,
		uImpact, uImpactDetail, uComm, uResolved)
	return nil
}

// encodeNames packs names as a text[] literal, every element quoted (names
// may hold commas, quotes, braces or the word NULL).
func encodeNames(names []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(n); j++ {
			if n[j] == '"' || n[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(n[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// Sweep runs the scheduled notification pass once: every open incident
// whose group_wait, group_interval or repeat is due is re-scored and its
// notification recorded. Per org it takes the same advisory lock as ingest,
// locks the incidents and re-checks that they are still due, then writes
// the outbox rows and moves next_due_at in the same transaction: two
// replicas sweeping at once never notify twice. It returns the events recorded.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	start := time.Now()
	defer func() { s.m.sweepDur.Observe(time.Since(start).Seconds()) }()
	total := 0
	// An org whose transaction fails is left out of the rest of this sweep
	// (its incidents stay due); the other orgs are swept all the same.
	failed := []string{}
	var errs []error
	// seen guards the loop: a round that finds only incidents this sweep
	// already worked (still due: a fault, or a clock that jumped) ends it,
	// rather than working the same ones again for ever.
	seen := map[int64]bool{}
	for {
		now := s.cfg.Now().UTC()
		rows, err := s.pool.Query(ctx, `
SELECT org, array_agg(id ORDER BY id) FROM (
    SELECT id, org FROM hunting_incidents
    WHERE status = 'open' AND next_due_at <= $1 AND org <> ALL($2::text[])
    ORDER BY next_due_at LIMIT 500) d
GROUP BY org ORDER BY org`, now, failed)
		if err != nil {
			return total, errors.Join(append(errs, fmt.Errorf("hunting: sweep: find due incidents: %w", err))...)
		}
		type due struct {
			org string
			ids []int64
		}
		var dues []due
		found, fresh := 0, 0
		for rows.Next() {
			var d due
			if err := rows.Scan(&d.org, &d.ids); err != nil {
				rows.Close()
				return total, errors.Join(append(errs, fmt.Errorf("hunting: sweep: %w", err))...)
			}
			found += len(d.ids)
			for _, id := range d.ids {
				if !seen[id] {
					seen[id] = true
					fresh++
				}
			}
			dues = append(dues, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return total, errors.Join(append(errs, fmt.Errorf("hunting: sweep: find due incidents: %w", err))...)
		}
		if fresh == 0 {
			break
		}
		for _, d := range dues {
			var n int
			err := s.inOrg(ctx, d.org, func(tx pgx.Tx) error {
				sts, err := loadStates(ctx, tx, d.org, d.ids, &now, true)
				if err != nil {
					return err
				}
				n, err = s.refresh(ctx, tx, sts, nil, now)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return total, errors.Join(append(errs, ctx.Err())...)
				}
				failed = append(failed, d.org)
				errs = append(errs, fmt.Errorf("hunting: sweep org %s: %w", d.org, err))
				continue
			}
			total += n
		}
		if found < 500 {
			break
		}
	}
	// Re-scoring scans the open incidents: once a minute is plenty.
	now := s.cfg.Now()
	s.rescoreMu.Lock()
	run := s.lastRescore.IsZero() || now.Sub(s.lastRescore) >= time.Minute || now.Before(s.lastRescore)
	if run {
		s.lastRescore = now
	}
	s.rescoreMu.Unlock()
	if run {
		if err := s.rescore(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// inOrg runs fn in a transaction that holds org's lock.
func (s *Service) inOrg(ctx context.Context, org string, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockOrg(ctx, tx, org); err != nil {
			return err
		}
		return fn(tx)
	})
}

// rescoreBatch bounds the incidents one sweep re-scores.
const rescoreBatch = 200

// staleIncidentsSQL finds, by org, up to $2 open incidents not updated
// since $1, the longest untouched first. It reads the open incidents only
// (hunting_incidents_open_idx), not every incident ever stored.
const staleIncidentsSQL = `
SELECT org, array_agg(id ORDER BY id) FROM (
    SELECT id, org FROM hunting_incidents
    WHERE status = 'open' AND updated_at < $1
    ORDER BY updated_at LIMIT $2) d
GROUP BY org ORDER BY org`

// rescore refreshes the score (its recency part decays) of open incidents
// not touched for RescoreInterval, a bounded number per sweep.
func (s *Service) rescore(ctx context.Context) error {
	now := s.cfg.Now().UTC()
	rows, err := s.pool.Query(ctx, staleIncidentsSQL, now.Add(-s.cfg.RescoreInterval), rescoreBatch)
	if err != nil {
		return fmt.Errorf("hunting: rescore: find stale incidents: %w", err)
	}
	byOrg := map[string][]int64{}
	for rows.Next() {
		var org string
		var ids []int64
		if err := rows.Scan(&org, &ids); err != nil {
			rows.Close()
			return fmt.Errorf("hunting: rescore: %w", err)
		}
		byOrg[org] = ids
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("hunting: rescore: find stale incidents: %w", err)
	}
	var errs []error
	for org, ids := range byOrg {
		err := s.inOrg(ctx, org, func(tx pgx.Tx) error {
			sts, err := loadStates(ctx, tx, org, ids, nil, true)
			if err != nil {
				return err
			}
			live := sts[:0]
			for _, st := range sts {
				if st.Status == "open" {
					live = append(live, st)
				}
			}
			_, err = s.refresh(ctx, tx, live, nil, now)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return errors.Join(append(errs, ctx.Err())...)
			}
			// One org's failure does not hold back the others'.
			errs = append(errs, fmt.Errorf("hunting: rescore org %s: %w", org, err))
		}
	}
	return errors.Join(errs...)
}

// Prune deletes prevalence sightings that no longer count (older than
// twice the window, or than the chain window and a window, on the service
// clock); the scheduler runs it hourly.
func (s *Service) Prune(ctx context.Context) (int64, error) {
	// Kept for as long as a count reaches back: twice the window, or the
	// chain window (rare over all of it) and a window more.
	keep := max(2*s.cfg.Window, s.cfg.ChainWindow+s.cfg.Window)
	// Rows an ingest holds are skipped, not waited for: the ingest's
	// upsert locks its rows in key order and the prune's scan in another,
	// and the two deadlocked (the ingest's whole group answered 503). A
	// row skipped is being seen again, or goes at the next prune.
	tag, err := s.pool.Exec(ctx, `
DELETE FROM hunting_entity_devices d
USING (SELECT org, kind, value, device FROM hunting_entity_devices WHERE last_seen < $1 FOR UPDATE SKIP LOCKED) x
WHERE d.org = x.org AND d.kind = x.kind AND d.value = x.value AND d.device = x.device`, s.cfg.Now().Add(-keep))
	if err != nil {
		return 0, fmt.Errorf("hunting: prune prevalence: %w", err)
	}
	return tag.RowsAffected(), nil
}

// lockOrgSQL takes the org's transaction-scoped advisory lock.
const lockOrgSQL = `SELECT pg_advisory_xact_lock(hashtextextended('threatdesk/hunting/' || $1, 0))`

// lockOrg serializes writers of one org's incidents across replicas for the
// rest of tx: ingest, the sweep and re-score, and every change from chat
// (acknowledge, close, resolve, notify now). They read incidents without row
// locks (loadStates), so a writer that skipped it could be overwritten.
func lockOrg(ctx context.Context, tx pgx.Tx, org string) error {
	if _, err := tx.Exec(ctx, lockOrgSQL, org); err != nil {
		return fmt.Errorf("lock org %s: %w", org, err)
	}
	return nil
}

func nilTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
