package hunting

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
)

// One org's part of a batch goes through these stages, in order, inside
// the batch's transaction. Each takes one input and gives one output; the
// pure ones (latestPerID, classify, joinKeys, correlate) touch no database
// and are tested on their own.
//
//	latestPerID      items -> the newest item per alert id
//	loadKnown        those -> what the store has of them (org lock taken)
//	classify         items + store -> accepted / updated / unchanged
//	measure          live items -> prevalence (common and rare keys)
//	joinKeys         items + prevalence -> each item's join keys
//	findCandidates   join keys -> stored incidents holding them
//	correlate        items + candidates -> who joins what, merges
//	allocate         correlation -> incident ids for new incidents
//	lockIncidents    touched incidents -> their locked states
//	store            merges, alerts, entities -> written; new entities
//	refresh          states + fold -> scores, policy, outbox events
//
// req, when not nil, names the request of each item (a group of
// coalesced requests, groupcommit.go).
func (s *Service) ingestOrg(ctx context.Context, tx pgx.Tx, org string, alerts []*Alert, idx []int, req []int, out []ItemResult, after *cacheUpdate, clock *stageClock) (int, error) {
	now := s.cfg.Now().UTC()
	ws := latestPerID(alerts, idx, req, out)
	have, err := loadKnown(ctx, tx, org, ws)
	if err != nil {
		return 0, err
	}
	if ws = classify(ws, have); len(ws) == 0 {
		clock.lap(stageKnown)
		return 0, nil
	}
	clock.lap(stageKnown)
	prev, err := s.measure(ctx, tx, org, ws, now, after)
	if err != nil {
		return 0, err
	}
	keys := joinKeys(ws, prev)
	clock.lap(stageMeasure)
	cands, err := s.findCandidates(ctx, tx, org, keys, prev)
	if err != nil {
		return 0, err
	}
	clock.lap(stageCandidates)
	corr := correlate(s.correlationInput(ws, prev, cands))
	clock.lap(stageCorrelate)
	merges, err := s.allocate(ctx, tx, org, now, ws, corr)
	if err != nil {
		return 0, err
	}
	clock.lap(stageAllocate)
	sts, err := lockIncidents(ctx, tx, org, ws, merges)
	if err != nil {
		return 0, err
	}
	clock.lap(stageLockIncidents)
	fold, keep, err := s.store(ctx, tx, org, now, ws, merges, sts, prev.rare, after)
	if err != nil {
		return 0, err
	}
	clock.lap(stageStore)
	events, err := s.mergeEvents(ctx, tx, org, now, merges, fold.posted)
	if err != nil {
		return 0, err
	}
	n, err := s.refresh(ctx, tx, keep, fold, now)
	if err != nil {
		return 0, err
	}
	clock.lap(stageRefresh)
	return events + n, nil
}

// The stages of an ingest transaction whose wall time is counted
// (threatdesk_hunting_ingest_stage_seconds_total): with the benchmarks,
// where intake time goes. They cover the transaction from taking a
// connection (begin) to the caches learning what it stored (apply); a
// transaction that rolls back counts the stages it went through.
const (
	stageBegin = iota
	stageKnown
	stageMeasure
	stageCandidates
	stageCorrelate
	stageAllocate
	stageLockIncidents
	stageStore
	stageRefresh
	stageCommit
	stageApply
	numStages
)

var stageNames = [numStages]string{"begin", "known", "measure", "candidates", "correlate", "allocate", "lock_incidents", "store", "refresh", "commit", "apply"}

// stageClock counts the time since its last lap to a stage.
type stageClock struct {
	m    *metrics
	last time.Time
}

func (s *Service) stageClock() *stageClock { return &stageClock{m: s.m, last: time.Now()} }

// lap adds the time since the last lap to stage.
func (c *stageClock) lap(stage int) {
	now := time.Now()
	c.m.stages[stage].Add(now.Sub(c.last).Seconds())
	c.last = now
}

// latestPerID keeps, per alert id, the item with the newest lastUpdate
// (the later one on a tie) and marks the others in out. req, when not nil,
// names each item's request: items of concurrent requests are told so.
func latestPerID(alerts []*Alert, idx []int, req []int, out []ItemResult) []*work {
	last := make(map[string]int, len(idx))
	same := func(i, j int) bool { return req == nil || req[i] == req[j] }
	for _, i := range idx {
		a := alerts[i]
		if j, ok := last[a.ID]; ok {
			if alerts[j].LastUpdate.After(a.LastUpdate) {
				out[i].Status, out[i].Reason = StatusUnchanged, "an item later in the request has a newer version of this alert"
				if !same(i, j) {
					out[i].Reason = "a request sent at the same time has a newer version of this alert"
				}
				continue
			}
			switch {
			case alerts[j].LastUpdate.Equal(a.LastUpdate) && bytes.Equal(hashOf(alerts[j]), hashOf(a)):
				// The same version twice: a copy, nothing changed.
				out[j].Status, out[j].Reason = StatusUnchanged, "the same version of this alert is later in the request"
				if !same(i, j) {
					out[j].Reason = "a request sent at the same time has the same version of this alert"
				}
			case same(i, j):
				out[j].Status, out[j].Reason = StatusUpdated, "superseded by a later item in the same request"
			default:
				out[j].Status, out[j].Reason = StatusUpdated, "superseded by a newer version of this alert in a request sent at the same time"
			}
		}
		last[a.ID] = i
	}
	ws := make([]*work, 0, len(last))
	for _, i := range idx {
		if j, ok := last[alerts[i].ID]; ok && j == i {
			ws = append(ws, &work{a: alerts[i], res: &out[i], hash: hashOf(alerts[i])})
		}
	}
	return ws
}

// hashOf is a's content hash: the one parsing set, or computed (not kept
// on a: a caller may change and send the same Alert again).
func hashOf(a *Alert) []byte {
	if a.hash != nil {
		return a.hash
	}
	return alertHash(a)
}

// knownAlert is what the store has of an alert.
type knownAlert struct {
	inc  int64
	hash []byte
	lu   *time.Time
	open bool
	// closedAt: when its incident was closed (nil while open or merged);
	// lastAct: the stored version's latest activity.
	closedAt *time.Time
	lastAct  time.Time
	// What the incident's aggregates depend on: a change of any of them
	// (a status or classification set upstream, a severity lowered, a
	// title or family that makes it commodity or not) recomputes the
	// incident's aggregates from its alerts.
	status, class, severity, category string
	title, family, source             string
}

// loadKnown takes the org's lock and reads the stored versions of the
// batch's alerts, in one round trip. One writer per org at a time (across
// replicas): correlation reads then writes the org's incidents.
func loadKnown(ctx context.Context, tx pgx.Tx, org string, ws []*work) (map[string]knownAlert, error) {
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.a.ID
	}
	have := map[string]knownAlert{}
	kb := &pgx.Batch{}
	kb.Queue(lockOrgSQL, org)
	kb.Queue(knownAlertsSQL, org, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var k knownAlert
			if err := rows.Scan(&id, &k.inc, &k.hash, &k.lu, &k.open, &k.closedAt, &k.lastAct, &k.status, &k.class, &k.severity, &k.category,
				&k.title, &k.family, &k.source); err != nil {
				return fmt.Errorf("scan known alert: %w", err)
			}
			have[id] = k
		}
		return nil
	})
	if err := tx.SendBatch(ctx, kb).Close(); err != nil {
		return nil, fmt.Errorf("lock org %s and load known alerts: %w", org, err)
	}
	return have, nil
}

// knownAlertsSQL reads the stored versions of the alerts with the ids $2
// of org $1: one primary-key probe per id, whatever the planner's
// statistics say. (As "a.org = $1 AND a.id = ANY($2)" it was planned, with
// statistics taken while the org had few alerts, as a scan of every alert
// of the org filtered by id: 12,648 pages read to find none of 500 ids
// among 100,000 alerts, and growing with the org.) LIMIT 1 keeps each
// lateral lookup a probe of its own rather than a join the planner may
// turn into a scan.
const knownAlertsSQL = `
SELECT x.id, k.incident_id, k.content_hash, k.last_update, k.open, k.closed_at, k.last_act, k.status, k.classification, k.severity, k.category,
    k.title, k.threat_family, k.detection_source
FROM (SELECT DISTINCT unnest($2::text[])) AS x(id)
CROSS JOIN LATERAL (
    SELECT a.incident_id, a.content_hash, a.last_update, i.status = 'open' AS open,
        CASE WHEN i.status = 'closed' THEN i.closed_at END AS closed_at,
        greatest(a.first_activity, a.last_activity) AS last_act, a.status, a.classification,
        a.severity, a.category, a.title, a.threat_family, a.detection_source
    FROM hunting_alerts a JOIN hunting_incidents i ON i.id = a.incident_id
    WHERE a.org = $1 AND a.id = x.id
    LIMIT 1) k`

// classify sets each item's status against the store and returns the
// items that change something: new alerts and real updates.
func classify(ws []*work, have map[string]knownAlert) []*work {
	live := ws[:0]
	for _, w := range ws {
		k, ok := have[w.a.ID]
		if !ok {
			w.res.Status = StatusAccepted
			live = append(live, w)
			continue
		}
		w.res.IncidentID = k.inc
		switch {
		case string(k.hash) == string(w.hash):
			w.res.Status, w.res.Reason = StatusUnchanged, "identical to the stored alert"
			continue
		case k.lu != nil && k.lu.After(w.a.LastUpdate):
			w.res.Status, w.res.Reason = StatusUnchanged, "older than the stored version (lastUpdate)"
			continue
		}
		w.res.Status, w.res.Reason = StatusUpdated, ""
		w.update, w.prevInc, w.prevOK = true, k.inc, k.open
		// Activity after its incident was closed, and after what the
		// stored version knew, is new activity: the closed incident is
		// never reopened, the alert moves on to a new incident that
		// follows it (or an open one it links to), at that activity's time.
		if act := w.a.activity(); k.closedAt != nil && act.After(*k.closedAt) && act.After(k.lastAct) {
			w.reawake, w.at = true, act
		}
		w.wasResolved = k.status == alertResolved
		w.triage = k.status != w.a.Status || k.class != w.a.Classification || k.severity != string(w.a.Severity) || k.category != w.a.Category ||
			k.title != w.a.Title || k.family != w.a.ThreatFamily || k.source != w.a.DetectionSource
		live = append(live, w)
	}
	return live
}

// prevalence is what the batch learned of its entities' spread.
type prevalence struct {
	// common keys are seen on CommonEntityDevices devices or more in the
	// window: they link nothing. rare keys are seen on one or two: in the
	// window, or for the kinds that chain (chainKinds) over the whole
	// chain window. A key seen on no device (the account of a sign-in
	// alert) is not rare: nothing says how widespread it is.
	common, rare map[ekey]bool
	// keySet is every join-key candidate of the batch (strong entities of
	// alerts that may correlate).
	keySet map[ekey]struct{}
	// minT and maxT span the batch's alert times.
	minT, maxT time.Time
}

// correlates reports whether the item takes part in correlation (an
// update of an alert of a closed incident stays there and links nothing,
// unless it brings activity from after the closing).
func (w *work) correlates() bool { return !w.update || w.prevOK || w.reawake }

// measure records on which device each strong entity of the batch was
// seen, then finds the entities seen on too many devices in the window
// (common) and on very few (rare), in one round trip.
func (s *Service) measure(ctx context.Context, tx pgx.Tx, org string, ws []*work, now time.Time, after *cacheUpdate) (prevalence, error) {
	p := prevalence{common: map[ekey]bool{}, rare: map[ekey]bool{}, keySet: map[ekey]struct{}{}}
	pb := &pgx.Batch{}
	p.minT, p.maxT = s.queueSightings(pb, org, ws, now, after)
	for _, w := range ws {
		if !w.correlates() {
			continue
		}
		for _, e := range w.a.Entities {
			if e.JoinKey {
				p.keySet[ekey{string(e.Kind), e.Value}] = struct{}{}
			}
		}
	}
	kinds, values := make([]string, 0, len(p.keySet)), make([]string, 0, len(p.keySet))
	s.cache.mu.Lock()
	for k := range p.keySet {
		if k.kind == string(EntityDevice) {
			continue
		}
		// A key found common a little while ago is still common.
		if until, ok := s.cache.common[devKey(org, k.kind, k.value, "")]; ok && now.Before(until) {
			p.common[k] = true
			continue
		}
		kinds = append(kinds, k.kind)
		values = append(values, k.value)
	}
	s.cache.mu.Unlock()
	if len(kinds) > 0 {
		pb.Queue(`
SELECT k.kind, k.value, c.n >= $5 FROM unnest($2::text[], $3::text[]) AS k(kind, value)
CROSS JOIN LATERAL (
    -- Counting stops at the threshold: a popular key costs no more than a rare one.
    SELECT count(*) AS n FROM (
        SELECT 1 FROM hunting_entity_devices d
        WHERE d.org = $1 AND d.kind = k.kind AND d.value = k.value AND d.last_seen >= $4
        LIMIT $5) x) c
CROSS JOIN LATERAL (
    -- A file or account links over the chain window when it is rare over
    -- all of it: one that was common two days ago is not rare today.
    SELECT count(*) AS n FROM (
        SELECT 1 FROM hunting_entity_devices d
        WHERE k.kind = ANY($7::text[]) AND c.n <= 2
          AND d.org = $1 AND d.kind = k.kind AND d.value = k.value AND d.last_seen >= $6
        LIMIT 3) x) r
WHERE c.n >= $5 OR CASE WHEN k.kind = ANY($7::text[]) THEN r.n ELSE c.n END BETWEEN 1 AND 2`,
			org, kinds, values, p.minT.Add(-s.cfg.Window), s.cfg.CommonEntityDevices, p.minT.Add(-max(s.cfg.ChainWindow, s.cfg.Window)), chainKinds).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k ekey
				var common bool
				if err := rows.Scan(&k.kind, &k.value, &common); err != nil {
					return fmt.Errorf("scan prevalence: %w", err)
				}
				if common {
					p.common[k] = true
					after.common[devKey(org, k.kind, k.value, "")] = now.Add(commonCacheTTL)
				} else {
					p.rare[k] = true
				}
			}
			return nil
		})
	}
	// One round trip: record this batch's sightings, then count (the count
	// sees them: same transaction, statements in order).
	if err := tx.SendBatch(ctx, pb).Close(); err != nil {
		return p, fmt.Errorf("record and measure entity prevalence: %w", err)
	}
	return p, nil
}

// joinKeys sets each correlating item's join keys (strong, not common) and
// returns the distinct keys to look up.
func joinKeys(ws []*work, p prevalence) []ekey {
	for _, w := range ws {
		if !w.correlates() {
			continue
		}
		for _, e := range w.a.Entities {
			if e.JoinKey && !p.common[ekey{string(e.Kind), e.Value}] {
				w.keys = append(w.keys, e)
			}
		}
	}
	keys := make([]ekey, 0, len(p.keySet))
	for k := range p.keySet {
		if !p.common[k] {
			keys = append(keys, k)
		}
	}
	return keys
}

// candidates are the stored incidents holding each join key.
type candidates map[ekey][]candidate

// findCandidates reads the open and closed incidents holding any of the
// keys within reach of the batch. A key held by CommonEntityDevices open incidents or
// more is glue, not evidence: it is added to p.common and has no
// candidates.
func (s *Service) findCandidates(ctx context.Context, tx pgx.Tx, org string, keys []ekey, p prevalence) (candidates, error) {
	cands := candidates{}
	if len(keys) == 0 {
		return cands, nil
	}
	kinds, values := make([]string, len(keys)), make([]string, len(keys))
	since, until := make([]time.Time, len(keys)), make([]time.Time, len(keys))
	for i, k := range keys {
		kinds[i], values[i] = k.kind, k.value
		// A rare file or account reaches back over the chain window.
		w := s.cfg.Window
		if p.rare[k] && rareChainKind(k.kind) {
			w = s.cfg.ChainWindow
		}
		since[i], until[i] = p.minT.Add(-w), p.maxT.Add(w)
	}
	rows, err := tx.Query(ctx, candidatesSQL, org, kinds, values, since, until, s.cfg.CommonEntityDevices)
	if err != nil {
		return nil, fmt.Errorf("find incidents to join: %w", err)
	}
	for rows.Next() {
		var c candidate
		var k ekey
		if err := rows.Scan(&k.kind, &k.value, &c.Inc, &c.First, &c.Last, &c.Closed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan incident entity: %w", err)
		}
		cands[k] = append(cands[k], c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find incidents to join: %w", err)
	}
	for k, cs := range cands {
		open := 0
		for _, c := range cs {
			if !c.Closed {
				open++
			}
		}
		if open >= s.cfg.CommonEntityDevices {
			delete(cands, k)
			p.common[k] = true
		}
	}
	return cands, nil
}

// candidatesSQL finds, for each key ($2 kinds, $3 values) of org $1, up to
// 2 * $6 incidents that saw it between $4 and $5. The window's start is a
// range of hunting_incident_entities_key_recent_idx: a key's older
// incidents, however many, are not read.
const candidatesSQL = `
SELECT k.kind, k.value, ie.incident_id, ie.first_seen, ie.last_seen, ie.closed
FROM unnest($2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS k(kind, value, since, until)
CROSS JOIN LATERAL (
    -- One index probe per key, and a bounded number of incidents per key:
    -- a key in $6 open incidents is glue, not evidence (the caller drops
    -- it). Closed incidents come along (a new incident says it follows
    -- one); merged ones have no entities left.
    SELECT e.incident_id, e.first_seen, e.last_seen,
        -- A probe of the small index of incidents that are not open, not
        -- of every incident row.
        EXISTS (SELECT 1 FROM hunting_incidents i WHERE i.id = e.incident_id AND i.status <> 'open') AS closed
    FROM hunting_incident_entities e
    WHERE e.org = $1 AND e.kind = k.kind AND e.value = k.value AND e.kind IN ('device', 'user', 'file', 'ip', 'url')
      AND e.join_key AND e.last_seen >= k.since AND e.first_seen <= k.until
    -- The newest first (a backward scan of the same range): a key's open
    -- incident is never crowded out by older closed ones.
    ORDER BY e.last_seen DESC
    LIMIT 2 * $6) ie`

// correlationInput gathers what correlate needs from the batch.
func (s *Service) correlationInput(ws []*work, p prevalence, cands candidates) correlationInput {
	in := correlationInput{Alerts: make([]corrAlert, len(ws)), Candidates: cands, Common: p.common, Window: s.cfg.Window,
		Rare: p.rare, ChainWindow: s.cfg.ChainWindow}
	for i, w := range ws {
		a := corrAlert{When: w.when(), Keys: w.keys, Stay: !w.correlates()}
		switch {
		case w.reawake:
			a.Follows = w.prevInc
		case w.update:
			a.Prev = w.prevInc
		}
		in.Alerts[i] = a
	}
	return in
}

// allocate creates the incidents the correlation asks for, sets each
// item's incident, and returns the merges to carry out.
func (s *Service) allocate(ctx context.Context, tx pgx.Tx, org string, now time.Time, ws []*work, c correlation) ([]mergeRec, error) {
	var ids []int64
	if c.NewIncidents > 0 {
		rows, err := tx.Query(ctx, `
INSERT INTO hunting_incidents (org, created_at, updated_at)
SELECT $1, $2, $2 FROM generate_series(1, $3) RETURNING id`, org, now, c.NewIncidents)
		if err != nil {
			return nil, fmt.Errorf("create incidents: %w", err)
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return nil, fmt.Errorf("create incidents: %w", err)
		}
		slices.Sort(ids)
		s.m.incidents.Add(float64(len(ids)))
		// New activity on a closed incident's entities: the new incident
		// says which one it follows (rare: a round trip only then).
		var fid, fof []int64
		for g, f := range c.Follows {
			if f != 0 {
				fid, fof = append(fid, ids[g]), append(fof, f)
			}
		}
		if len(fid) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE hunting_incidents i SET follows = x.f FROM unnest($1::bigint[], $2::bigint[]) AS x(id, f) WHERE i.id = x.id`,
				fid, fof); err != nil {
				return nil, fmt.Errorf("record the incidents new ones follow: %w", err)
			}
		}
	}
	for i, w := range ws {
		w.inc = c.Inc[i]
		if g := c.Group[i]; g >= 0 {
			w.inc, w.newInc = ids[g], true
		}
		w.res.IncidentID = w.inc
	}
	merges := make([]mergeRec, len(c.Merges))
	for i, m := range c.Merges {
		merges[i] = mergeRec{from: m.From, into: m.Into, reason: m.Reason}
		if m.Alert >= 0 {
			merges[i].alert = ws[m.Alert].a.ID
		}
	}
	return merges, nil
}

// lockIncidents locks and reads every incident the batch touches, merged
// ones included, before anything moves.
func lockIncidents(ctx context.Context, tx pgx.Tx, org string, ws []*work, merges []mergeRec) ([]*incState, error) {
	touched := map[int64]bool{}
	for _, w := range ws {
		touched[w.inc] = true
		if w.reawake {
			touched[w.prevInc] = true // it loses the alert
		}
	}
	for _, m := range merges {
		touched[m.from] = true
	}
	ids := make([]int64, 0, len(touched))
	for id := range touched {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return loadStates(ctx, tx, org, ids, nil, false)
}

// store writes the merges, the alerts and their incidents' entities as one
// pipeline, and returns what the batch adds to its incidents and the
// incidents that remain (the merged ones are gone).
func (s *Service) store(ctx context.Context, tx pgx.Tx, org string, now time.Time, ws []*work, merges []mergeRec, sts []*incState, rare map[ekey]bool, after *cacheUpdate) (*batchFold, []*incState, error) {
	fold := &batchFold{alerts: map[int64][]*work{}, absorbed: map[int64][]*incState{}, recount: map[int64]bool{}, rare: rare,
		entities: map[int64][]newEntity{}, posted: map[int64]bool{}, recompute: map[int64]bool{}}
	for _, w := range ws {
		fold.alerts[w.inc] = append(fold.alerts[w.inc], w)
		if w.triage {
			fold.recompute[w.inc] = true
		}
		if w.reawake && w.inc != w.prevInc {
			// The alert moved: both incidents are counted again from their
			// stored alerts (the closed one keeps its status and card).
			fold.recompute[w.inc], fold.recompute[w.prevInc] = true, true
		}
	}
	byID := make(map[int64]*incState, len(sts))
	for _, st := range sts {
		byID[st.ID] = st
	}
	b := &pgx.Batch{}
	if len(merges) > 0 {
		queueMerges(b, org, now, merges, fold.posted)
		for _, m := range merges {
			if o := byID[m.from]; o != nil {
				fold.absorbed[m.into] = append(fold.absorbed[m.into], o)
			}
			fold.recount[m.into] = true
			delete(byID, m.from)
		}
	}
	newAlerts := queueAlerts(b, org, now, ws)
	// Incidents created by this batch, unless a merge touches them
	// (correlation never merges a new one: it joins the oldest instead).
	newIncs := map[int64]bool{}
	for _, w := range ws {
		if w.newInc {
			newIncs[w.inc] = true
		}
	}
	for _, m := range merges {
		delete(newIncs, m.from)
		delete(newIncs, m.into)
	}
	newEnts := s.cache.queueIncidentEntities(b, org, ws, newIncs, fold.entities, after)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, fmt.Errorf("store %d alerts, their entities and %d merges: %w", len(ws), len(merges), err)
	}
	if err := copyNewAlerts(ctx, tx, org, now, newAlerts); err != nil {
		return nil, nil, err
	}
	if err := copyFreshEntities(ctx, tx, newEnts); err != nil {
		return nil, nil, err
	}
	keep := make([]*incState, 0, len(byID))
	for _, st := range sts {
		if byID[st.ID] != nil {
			keep = append(keep, st)
		}
	}
	return fold, keep, nil
}

// queueSightings queues the recording of on which device each strong
// entity of the batch was seen, and returns the span of the batch's times.
func (s *Service) queueSightings(pb *pgx.Batch, org string, ws []*work, now time.Time, after *cacheUpdate) (minT, maxT time.Time) {
	type dkey struct{ kind, value, dev string }
	seen := map[dkey]time.Time{}
	minT, maxT = ws[0].when(), ws[0].when()
	for _, w := range ws {
		t := w.when()
		minT, maxT = minTime(minT, t), maxTime(maxT, t)
		dev := w.a.DeviceID
		if dev == "" {
			continue
		}
		for _, e := range w.a.Entities {
			if !e.JoinKey || e.Kind == EntityDevice {
				continue
			}
			k := dkey{string(e.Kind), e.Value, dev}
			if old, ok := seen[k]; !ok || t.After(old) {
				seen[k] = t
			}
		}
	}
	// Rows this replica wrote less than an hour (of alert time) ago are
	// skipped: the stored last_seen is good enough for the window. Keys
	// cached as common are recorded all the same: the cache spares their
	// count, but the store must hold what another replica (or this one,
	// once the entry runs out) counts, or it would link through them.
	s.cache.mu.Lock()
	for k, t := range seen {
		if at, ok := s.cache.recorded[devKey(org, k.kind, k.value, k.dev)]; ok && t.Before(at.Add(time.Hour)) {
			delete(seen, k)
		}
	}
	s.cache.mu.Unlock()
	if len(seen) > 0 {
		dk := make([]dkey, 0, len(seen))
		for k := range seen {
			dk = append(dk, k)
			after.recorded[devKey(org, k.kind, k.value, k.dev)] = seen[k]
		}
		sort.Slice(dk, func(i, j int) bool {
			if dk[i].kind != dk[j].kind {
				return dk[i].kind < dk[j].kind
			}
			if dk[i].value != dk[j].value {
				return dk[i].value < dk[j].value
			}
			return dk[i].dev < dk[j].dev
		})
		kinds, values, devs := make([]string, len(dk)), make([]string, len(dk)), make([]string, len(dk))
		ts := make([]time.Time, len(dk))
		for i, k := range dk {
			kinds[i], values[i], devs[i], ts[i] = k.kind, k.value, k.dev, seen[k]
		}
		pb.Queue(sightingsSQL, org, kinds, values, devs, ts)
	}
	return minT, maxT
}

// sightingsSQL records that entities ($2 kinds, $3 values) of org $1 were
// seen on devices $4 at times $5.
const sightingsSQL = `
INSERT INTO hunting_entity_devices (org, kind, value, device, last_seen)
SELECT $1, x.k, x.v, x.d, x.t FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS x(k, v, d, t)
-- Read before writing: ON CONFLICT DO UPDATE locks (and so writes) every
-- conflicting row, even those its WHERE then skips. Rows that are already
-- recent enough are dropped here, with a primary-key probe per row: a
-- lateral lookup with LIMIT 1, because as a plain join it could be planned
-- as a hash join over every sighting of the org.
LEFT JOIN LATERAL (
    SELECT o.last_seen FROM hunting_entity_devices o
    WHERE o.org = $1 AND o.kind = x.k AND o.value = x.v AND o.device = x.d
    LIMIT 1) o ON true
WHERE o.last_seen IS NULL OR o.last_seen < x.t - interval '1 hour'
ON CONFLICT (org, kind, value, device) DO UPDATE SET last_seen = EXCLUDED.last_seen
    -- An hour's precision is plenty for a 24-hour window and saves most rewrites.
    WHERE hunting_entity_devices.last_seen < EXCLUDED.last_seen - interval '1 hour'`
