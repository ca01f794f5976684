package hunting

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ItemStatus is what happened to one alert of a request.
type ItemStatus string

// Item statuses.
const (
	// StatusAccepted: a new alert, stored and correlated.
	StatusAccepted ItemStatus = "accepted"
	// StatusUpdated: a known alert whose content changed (status,
	// classification, evidence); the row was updated, not duplicated.
	StatusUpdated ItemStatus = "updated"
	// StatusUnchanged: a re-post identical to (or older than) what is stored.
	StatusUnchanged ItemStatus = "unchanged"
	// StatusRejected: not stored; Reason says why.
	StatusRejected ItemStatus = "rejected"
)

// ItemResult is the outcome for one item of a request, in request order.
type ItemResult struct {
	Index      int        `json:"index"`
	ID         string     `json:"id,omitempty"`
	Source     Source     `json:"source,omitempty"`
	Status     ItemStatus `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	Tenant     string     `json:"tenant,omitempty"`
	Org        string     `json:"org,omitempty"`
	IncidentID int64      `json:"incident_id,omitempty"`
}

// IngestResult is the outcome of one request or batch.
type IngestResult struct {
	Format    Format `json:"format"`
	Accepted  int    `json:"accepted"`
	Updated   int    `json:"updated"`
	Unchanged int    `json:"unchanged"`
	Rejected  int    `json:"rejected"`
	// Queued counts the items stored in the intake queue, to be correlated
	// after the answer (Prefer: respond-async).
	Queued int          `json:"queued,omitempty"`
	Items  []ItemResult `json:"items"`
}

// Ingest normalizes raw alerts (Defender or Graph JSON, one item each) and
// stores, correlates, scores and evaluates them in one transaction. Items
// that do not normalize are rejected one by one; the others go on. An error
// is returned only when the store failed, and then nothing was stored.
// Alerts are routed to the org of their own tenant: this is the admin-wide
// intake.
func (s *Service) Ingest(ctx context.Context, items []RawAlert) (*IngestResult, error) {
	return s.ingest(ctx, items, binding{})
}

// IngestForOrg is Ingest for a sender that speaks for one org only (an org's
// own ingest token): when any item names a tenant that is not one of org's,
// nothing is stored and the error is a *ScopeError.
func (s *Service) IngestForOrg(ctx context.Context, org string, items []RawAlert) (*IngestResult, error) {
	if org == "" {
		return nil, errors.New("hunting: IngestForOrg needs an org")
	}
	return s.ingest(ctx, items, binding{org: org})
}

// binding limits what a batch may hold. The zero binding allows every
// configured tenant.
type binding struct {
	// org: every item must belong to one of this org's tenants, or the whole
	// batch is refused (*ScopeError).
	org string
	// tenant: items of any other tenant are rejected one by one (a Graph
	// pull is bound to the tenant it pulled).
	tenant string
	// queue: admitted items are queued, to be correlated after the answer
	// (queue.go), not correlated before it.
	queue bool
}

// ScopeError refuses a batch posted with an org's own token that holds an
// alert of a tenant that is not that org's. Nothing of the batch is stored.
type ScopeError struct {
	// Org is the token's org; Index and Tenant the first offending item.
	Org    string
	Index  int
	Tenant string
}

// Error says what was refused, without naming whose the tenant is.
func (e *ScopeError) Error() string {
	t := e.Tenant
	if t == "" {
		t = "(none)"
	}
	return fmt.Sprintf("this ingest token belongs to org %s and only accepts alerts of its tenants; item %d has tenant %s, "+
		"which is not one of them: nothing was stored (post other orgs' alerts with their own token)", e.Org, e.Index, t)
}

func (s *Service) ingest(ctx context.Context, items []RawAlert, bind binding) (*IngestResult, error) {
	res := &IngestResult{Items: make([]ItemResult, len(items))}
	alerts := make([]*Alert, 0, len(items))
	idx := make([]int, 0, len(items))
	var nDef, nGraph int
	norm := s.normalizeAll(items)
	for i := range items {
		a, src, err := norm[i].a, norm[i].src, norm[i].err
		r := &res.Items[i]
		r.Index, r.Source = i, src
		switch src {
		case SourceDefender:
			nDef++
		case SourceGraph:
			nGraph++
		}
		if err != nil {
			var ie *ItemError
			r.Status = StatusRejected
			r.Reason = err.Error()
			if errors.As(err, &ie) {
				r.ID, r.Tenant = ie.ID, ie.Tenant
				if bind.org != "" && ie.Tenant != "" && ie.Org != bind.org {
					// Another org's tenant, or one no org lists: refused
					// alike, whatever else is wrong with the item.
					return nil, &ScopeError{Org: bind.org, Index: i, Tenant: ie.Tenant}
				}
			}
			continue
		}
		r.ID, r.Org, r.Tenant = a.ID, a.Org, a.Tenant
		if bind.org != "" && a.Org != bind.org {
			return nil, &ScopeError{Org: bind.org, Index: i, Tenant: a.Tenant}
		}
		if bind.tenant != "" && a.Tenant != bind.tenant {
			r.Status = StatusRejected
			r.Reason = fmt.Sprintf("tenant %q is not the tenant %q this pull is for: an alert is trusted only for the tenant whose credentials fetched it", a.Tenant, bind.tenant)
			r.Org = ""
			continue
		}
		alerts = append(alerts, a)
		idx = append(idx, i)
	}
	switch {
	case nDef > 0 && nGraph > 0:
		res.Format = FormatMixedList
	case nGraph > 0:
		res.Format = FormatGraphList
	default:
		res.Format = FormatDefenderList
	}
	switch {
	case len(alerts) > 0 && bind.queue:
		if err := s.queueAdmitted(ctx, items, alerts, idx, res); err != nil {
			return nil, err
		}
	case len(alerts) > 0:
		out, err := s.IngestAlerts(ctx, alerts)
		if err != nil {
			return nil, err
		}
		for j, r := range out {
			it := &res.Items[idx[j]]
			it.Status, it.Reason, it.IncidentID = r.Status, r.Reason, r.IncidentID
		}
	}
	for _, it := range res.Items {
		switch it.Status {
		case StatusQueued:
			res.Queued++
		case StatusAccepted:
			res.Accepted++
		case StatusUpdated:
			res.Updated++
		case StatusUnchanged:
			res.Unchanged++
		case StatusRejected:
			res.Rejected++
		}
		s.m.items.WithLabelValues(s.liveConfig().orgLabel(it.Org), string(it.Status)).Inc()
	}
	return res, nil
}

type normalized struct {
	a   *Alert
	src Source
	err error
}

// normalizeAll decodes items on all cores: JSON decoding is most of the Go
// time of a batch, and the database is idle meanwhile.
func (s *Service) normalizeAll(items []RawAlert) []normalized {
	out := make([]normalized, len(items))
	tenants := s.liveConfig().tenants
	parallel(len(items), func(i int) {
		out[i].a, out[i].src, out[i].err = safeNormalize(items[i], tenants)
	})
	return out
}

// parallel calls fn(i) for every i below n, on all cores when n is large
// enough to be worth it.
func parallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+63)/64)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// safeNormalize is normalize with a panic turned into the item's
// rejection: it runs on worker goroutines, where a panic on one hostile
// item would end the whole process.
func safeNormalize(raw RawAlert, tenants map[string]string) (a *Alert, src Source, err error) {
	defer func() {
		if p := recover(); p != nil {
			a, err = nil, fmt.Errorf("the alert could not be read: %v", p)
		}
	}()
	return normalize(raw, tenants)
}

// IngestAlerts stores already normalized alerts in one transaction and
// returns one result per alert, in order. An alert without Org is routed by
// its Tenant; an alert of an unknown tenant, or without an id or a time, is
// rejected.
func (s *Service) IngestAlerts(ctx context.Context, alerts []*Alert) ([]ItemResult, error) {
	start := time.Now()
	now := s.cfg.Now()
	out := make([]ItemResult, len(alerts))
	byOrg := map[string][]int{}
	for i, a := range alerts {
		reason := s.admit(a, now)
		out[i] = ItemResult{Index: i, ID: a.ID, Source: a.Source, Org: a.Org, Tenant: a.Tenant}
		if reason != "" {
			out[i].Status, out[i].Reason = StatusRejected, reason
			continue
		}
		byOrg[a.Org] = append(byOrg[a.Org], i)
	}
	if len(byOrg) == 1 {
		// The common case, one org: coalesced with the org's other
		// requests in flight into one transaction (groupcommit.go).
		for org, idx := range byOrg {
			if err := s.groups.submit(ctx, s, org, alerts, idx, out); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	var events int
	var after *cacheUpdate
	clock := s.stageClock()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		clock.lap(stageBegin)
		after = newCacheUpdate()
		n, err := s.ingestOrgs(ctx, tx, alerts, byOrg, out, after, clock)
		events = n
		return err
	})
	if err != nil {
		return nil, err
	}
	clock.lap(stageCommit)
	// No answer before the commit is on disk, as for one org's group.
	if err := s.durable(ctx); err != nil {
		s.cache.forget()
		return nil, err
	}
	s.cache.apply(after)
	clock.lap(stageApply)
	took := time.Since(start)
	s.m.batchDur.Observe(took.Seconds())
	s.log.Debug("ingested batch", "alerts", len(alerts), "orgs", len(byOrg), "events", events, "took", took)
	return out, nil
}

// ingestOrgs stores, correlates and scores alerts[byOrg[org]] of each org
// in tx, the orgs in order (their advisory locks are taken in that order,
// so two such transactions never wait for each other in a cycle), and
// returns the events it recorded.
func (s *Service) ingestOrgs(ctx context.Context, tx pgx.Tx, alerts []*Alert, byOrg map[string][]int, out []ItemResult, after *cacheUpdate, clock *stageClock) (int, error) {
	orgs := make([]string, 0, len(byOrg))
	for o := range byOrg {
		orgs = append(orgs, o)
	}
	sort.Strings(orgs)
	events := 0
	for _, org := range orgs {
		n, err := s.ingestOrg(ctx, tx, org, alerts, byOrg[org], nil, out, after, clock)
		if err != nil {
			return events, fmt.Errorf("hunting: ingest %d alerts of org %s: %w", len(byOrg[org]), org, err)
		}
		events += n
	}
	return events, nil
}

// admit checks a for storing at now, routing it to its tenant's org when
// it has none, and returns why it is rejected, or "". An admitted alert
// gets its defaults: informational severity, and a lastUpdate far ahead
// of now brought back to now.
func (s *Service) admit(a *Alert, now time.Time) string {
	if a.Org == "" {
		a.Tenant = strings.ToLower(strings.TrimSpace(a.Tenant))
		a.Org = s.liveConfig().tenants[a.Tenant]
	}
	switch {
	case a.Org == "":
		return fmt.Sprintf("unknown tenant %q: no org in the config lists it", a.Tenant)
	case a.ID == "" || len(a.ID) > maxIDLen:
		return "missing or over-long alert id"
	case a.when().IsZero():
		return "no creation or activity time"
	case inFuture(a, now):
		// A time far ahead would keep the incident's entities in reach
		// of correlation, and "active within the hour", for ever.
		return "a creation, activity or update time more than a day ahead of now: check the sender's clock"
	}
	if a.Severity == "" {
		a.Severity = SeverityInformational
	}
	if a.LastUpdate.After(now.Add(maxSkewAhead)) {
		// Versions are ordered by lastUpdate: one stamped far ahead (up
		// to maxAhead) would make every real update after it "older" and
		// pin the alert as it says, a forged status included. It counts
		// as sent now; its hash stays that of the alert as sent, so the
		// same alert sent again is unchanged. A sender's clock a little
		// ahead (up to maxSkewAhead) keeps its own order.
		a.LastUpdate = now
	}
	return ""
}

// maxAhead is how far ahead of the service clock an alert's times may be
// (clock skew between the sender and us), and no more.
const maxAhead = 24 * time.Hour

// maxSkewAhead is how far ahead of the service clock an alert's lastUpdate
// may be and still order its versions as stamped.
const maxSkewAhead = 5 * time.Minute

// inFuture reports whether any of a's times is more than maxAhead past now.
func inFuture(a *Alert, now time.Time) bool {
	limit := now.Add(maxAhead)
	for _, t := range []time.Time{a.Created, a.FirstActivity, a.LastActivity, a.LastUpdate} {
		if t.After(limit) {
			return true
		}
	}
	return false
}

// work is one alert going through a batch.
type work struct {
	a       *Alert
	res     *ItemResult
	hash    []byte
	update  bool
	prevInc int64 // incident of the stored alert, if any
	prevOK  bool  // that incident is open
	keys    []Entity
	inc     int64
	// newInc: inc was created by this batch (allocate), so no row of
	// hunting_incident_entities can hold it yet.
	newInc bool
	// wasResolved: the stored version was resolved upstream. triage: the
	// update changes its status, classification, severity or category.
	wasResolved, triage bool
	// reawake: an update of an alert of a closed incident that brings
	// activity from after the closing (classify); at is that activity's
	// time, at which it correlates.
	reawake bool
	at      time.Time
}

// when is the time the item correlates at: the alert's, or the new
// activity of a reawakened one.
func (w *work) when() time.Time {
	if !w.at.IsZero() {
		return w.at
	}
	return w.a.when()
}

func alertHash(a *Alert) []byte {
	buf := make([]byte, 0, 1024)
	w := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	for _, s := range []string{string(a.Source), a.ID, a.Tenant, a.ProviderIncident, a.Title, a.Description, a.Recommended,
		string(a.Severity), a.Status, a.Classification, a.Determination, a.Category, a.DetectionSource, a.ThreatFamily,
		a.DeviceID, a.DeviceName, a.WebURL, strings.Join(a.Techniques, ",")} {
		w(s)
	}
	for _, t := range []time.Time{a.Created, a.FirstActivity, a.LastActivity, a.LastUpdate} {
		buf = binary.AppendVarint(buf, t.UnixNano())
	}
	for _, e := range a.Entities {
		w(string(e.Kind))
		w(e.Value)
		w(e.Display)
		w(e.Alt)
	}
	sum := sha256.Sum256(buf)
	return sum[:]
}

// ekey is an entity's key.
type ekey struct{ kind, value string }

type mergeRec struct {
	from, into    int64
	alert, reason string
}

// queueMerges queues, on the batch's pipeline, the folding of each "from"
// incident into its "into" incident in five set-based statements: alerts
// and entities move, the old rows are marked merged and the merges recorded.
// posted learns which merged incidents had a card.
func queueMerges(b *pgx.Batch, org string, now time.Time, ms []mergeRec, posted map[int64]bool) {
	n := len(ms)
	from, into, alerts, reasons := make([]int64, n), make([]int64, n), mk(n), mk(n)
	for i, m := range ms {
		from[i], into[i], alerts[i], reasons[i] = m.from, m.into, m.alert, m.reason
	}
	b.Queue(`
UPDATE hunting_alerts a SET incident_id = ($2::bigint[])[array_position($1::bigint[], a.incident_id)]
-- = ANY: an index scan on incident_id whatever the statistics say (a join
-- with unnest may be planned as a scan of every alert).
WHERE a.incident_id = ANY($1::bigint[])`, from, into)
	b.Queue(`
INSERT INTO hunting_incident_entities (incident_id, org, kind, value, display, alt, join_key, first_seen, last_seen)
SELECT m.dst, $3, e.kind, e.value, max(e.display), max(e.alt), bool_and(e.join_key), min(e.first_seen), max(e.last_seen)
FROM hunting_incident_entities e JOIN unnest($1::bigint[], $2::bigint[]) AS m(src, dst) ON e.incident_id = m.src
GROUP BY m.dst, e.kind, e.value
ON CONFLICT (incident_id, kind, value) DO UPDATE SET
    first_seen = least(hunting_incident_entities.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(hunting_incident_entities.last_seen, EXCLUDED.last_seen)`, from, into, org)
	b.Queue(`DELETE FROM hunting_incident_entities WHERE incident_id = ANY($1)`, from)
	// A card handed on keeps its acknowledgement (absorb): the survivor had
	// no card of its own.
	b.Queue(`
UPDATE hunting_incidents d SET acked_at = o.acked_at, acked_by = o.acked_by, acked_by_id = o.acked_by_id
FROM unnest($1::bigint[], $2::bigint[]) AS m(src, dst) JOIN hunting_incidents o ON o.id = m.src
WHERE d.id = m.dst AND d.posted_at IS NULL AND d.acked_at IS NULL AND o.posted_at IS NOT NULL AND o.acked_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM unnest($1::bigint[], $2::bigint[]) AS m2(src, dst) JOIN hunting_incidents o2 ON o2.id = m2.src
                  WHERE m2.dst = m.dst AND o2.posted_at IS NOT NULL AND o2.acked_at IS NULL)`, from, into)
	// A card handed on unacknowledged makes the survivor unacknowledged,
	// acknowledged as it may have been: its reminders must go on (one
	// alert naming the devices of both would otherwise silence them).
	b.Queue(`
UPDATE hunting_incidents d SET acked_at = NULL, acked_by = NULL, acked_by_id = NULL
WHERE d.id = ANY($2) AND d.acked_at IS NOT NULL AND EXISTS (
    SELECT 1 FROM unnest($1::bigint[], $2::bigint[]) AS m(src, dst) JOIN hunting_incidents o ON o.id = m.src
    WHERE m.dst = d.id AND o.posted_at IS NOT NULL AND o.acked_at IS NULL)`, from, into)
	b.Queue(`
UPDATE hunting_incidents i SET status = 'merged', merged_into = m.dst, next_due_at = NULL, updated_at = $3
FROM unnest($1::bigint[], $2::bigint[]) AS m(src, dst)
WHERE i.id = m.src
RETURNING i.id, i.posted_at IS NOT NULL`, from, into, now).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id int64
			var p bool
			if err := rows.Scan(&id, &p); err != nil {
				return fmt.Errorf("mark incidents merged: %w", err)
			}
			posted[id] = p
		}
		return nil
	})
	b.Queue(`
INSERT INTO hunting_merges (org, from_id, into_id, alert_id, reason, merged_at)
SELECT $1, f, t, a, r, $6 FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[]) AS x(f, t, a, r)`,
		org, from, into, alerts, reasons, now)
}

// mergeEvents records incident.merged for merged incidents that had a card.
func (s *Service) mergeEvents(ctx context.Context, tx pgx.Tx, org string, now time.Time, ms []mergeRec, posted map[int64]bool) (int, error) {
	s.m.merges.Add(float64(len(ms)))
	events := 0
	for _, m := range ms {
		if !posted[m.from] {
			continue
		}
		if err := s.appendEvent(ctx, tx, EventMerged, EventPayload{Org: org, IncidentID: m.from, MergedInto: m.into, Reason: m.reason, At: now,
			Status: "merged", Final: true}); err != nil {
			return 0, err
		}
		events++
	}
	return events, nil
}

// queueAlerts queues the upsert of the batch's updated alerts; the new ones
// are left to copyNewAlerts. It returns the new ones.
func queueAlerts(b *pgx.Batch, org string, now time.Time, ws []*work) []*work {
	var nw, up []*work
	for _, w := range ws {
		if w.update {
			up = append(up, w)
		} else {
			nw = append(nw, w)
		}
	}
	if len(up) == 0 {
		return nw
	}
	n := len(up)
	var (
		ids, sources, tenants, incs, provInc, titles, descs, recs, sevs, statuses, classes, determs = mk(n), mk(n), mk(n), make([]int64, n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n)
		cats, tactics, techs, dets, families, devIDs, devNames, urls                                = mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n)
		ranks                                                                                       = make([]int32, n)
		experts                                                                                     = make([]bool, n)
		created, first, lastAct, lastUpd                                                            = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		hashes, evidence                                                                            = make([][]byte, n), make([][]byte, n)
	)
	for i, w := range up {
		a := w.a
		ids[i], sources[i], tenants[i], incs[i], provInc[i] = a.ID, string(a.Source), a.Tenant, w.inc, a.ProviderIncident
		titles[i], descs[i], recs[i], sevs[i], ranks[i] = a.Title, a.Description, a.Recommended, string(a.Severity), int32(a.Severity.Rank())
		statuses[i], classes[i], determs[i], cats[i], tactics[i] = a.Status, a.Classification, a.Determination, a.Category, a.Tactic
		techs[i], dets[i], experts[i], families[i] = strings.Join(a.Techniques, ","), a.DetectionSource, a.Expert, a.ThreatFamily
		devIDs[i], devNames[i], urls[i] = a.DeviceID, a.DeviceName, a.WebURL
		created[i], first[i], lastAct[i], lastUpd[i] = a.Created, a.FirstActivity, a.LastActivity, a.LastUpdate
		hashes[i] = w.hash
		if evidence[i] = a.evidence; evidence[i] == nil {
			evidence[i] = evidenceJSON(a)
		}
	}
	b.Queue(alertsUpsertSQL, org, now, ids, sources, tenants, incs, provInc, titles, descs, recs, sevs, ranks, statuses, classes, determs,
		cats, tactics, techs, dets, experts, families, devIDs, devNames, urls, created, first, lastAct, lastUpd, hashes, evidence)
	return nw
}

// alertCols are hunting_alerts' columns as copyNewAlerts writes them.
var alertCols = []string{"org", "id", "source", "tenant", "incident_id", "provider_incident", "title", "description", "recommended",
	"severity", "severity_rank", "status", "classification", "determination", "category", "tactic", "techniques", "detection_source",
	"expert", "threat_family", "device_id", "device_name", "web_url", "created_time", "first_activity", "last_activity", "last_update",
	"content_hash", "evidence", "ingested_at", "updated_at"}

// copyNewAlerts inserts the batch's new alerts with COPY: none of their ids
// is stored (the org lock is held since they were looked up), and COPY
// costs the server much less per row than an INSERT from arrays, which it
// must unpack first.
func copyNewAlerts(ctx context.Context, tx pgx.Tx, org string, now time.Time, ws []*work) error {
	if len(ws) == 0 {
		return nil
	}
	src := &alertRows{org: org, now: now, ws: ws, i: -1, row: make([]any, len(alertCols))}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hunting_alerts"}, alertCols, src); err != nil {
		return fmt.Errorf("copy %d new alerts: %w", len(ws), err)
	}
	return nil
}

// alertRows is the pgx.CopyFromSource of copyNewAlerts; its row is reused.
type alertRows struct {
	org string
	now time.Time
	ws  []*work
	i   int
	row []any
}

func (r *alertRows) Next() bool { r.i++; return r.i < len(r.ws) }
func (r *alertRows) Err() error { return nil }

func (r *alertRows) Values() ([]any, error) {
	w := r.ws[r.i]
	a := w.a
	techs := []string{}
	if t := strings.Join(a.Techniques, ","); t != "" {
		techs = strings.Split(t, ",") // as the upsert stores them
	}
	ev := a.evidence
	if ev == nil {
		ev = evidenceJSON(a)
	}
	var created, lastUpd *time.Time
	if !a.Created.IsZero() {
		created = &a.Created
	}
	if !a.LastUpdate.IsZero() {
		lastUpd = &a.LastUpdate
	}
	v := r.row
	v[0], v[1], v[2], v[3], v[4], v[5] = r.org, a.ID, string(a.Source), a.Tenant, w.inc, a.ProviderIncident
	v[6], v[7], v[8], v[9], v[10] = a.Title, a.Description, a.Recommended, string(a.Severity), int16(a.Severity.Rank())
	v[11], v[12], v[13], v[14], v[15], v[16] = a.Status, a.Classification, a.Determination, a.Category, a.Tactic, techs
	v[17], v[18], v[19], v[20], v[21], v[22] = a.DetectionSource, a.Expert, a.ThreatFamily, a.DeviceID, a.DeviceName, a.WebURL
	v[23], v[24], v[25], v[26] = created, a.FirstActivity, a.LastActivity, lastUpd
	v[27], v[28], v[29], v[30] = w.hash, ev, r.now, r.now
	return v, nil
}

// evidenceJSON is the alert's hunting_alerts.evidence: strong entities are
// in hunting_incident_entities; the evidence column keeps the rest.
func evidenceJSON(a *Alert) []byte {
	ents := make([]evidenceItem, 0, 4)
	for _, e := range a.Entities {
		if !e.JoinKey {
			it := evidenceItem{Kind: e.Kind, Value: e.Value, Display: e.Display, Alt: e.Alt}
			if it.Display == it.Value {
				it.Display = ""
			}
			ents = append(ents, it)
		}
	}
	b, err := json.Marshal(ents)
	if err != nil {
		panic(fmt.Sprintf("hunting: encode evidence of alert %q: %v", a.ID, err)) // strings only: cannot fail
	}
	return b
}

// alertsUpsertSQL writes updated alerts. An update's evidence is added to
// what the alert had (an update may carry less of it), newest first and
// at most maxEvidence entries (256, written out below): a sender updating
// one alert again and again with new entities no longer grows its row
// without bound.
const alertsUpsertSQL = `
INSERT INTO hunting_alerts (org, id, source, tenant, incident_id, provider_incident, title, description, recommended,
    severity, severity_rank, status, classification, determination, category, tactic, techniques, detection_source,
    expert, threat_family, device_id, device_name, web_url, created_time, first_activity, last_activity, last_update,
    content_hash, evidence, ingested_at, updated_at)
SELECT $1, id, src, tenant, inc, pinc, title, descr, rec, sev, rank, st, cls, det, cat, tac,
    CASE WHEN tech = '' THEN '{}'::text[] ELSE string_to_array(tech, ',') END, dsrc,
    exp, fam, devid, devname, url, nullif(ct, '0001-01-01Z'::timestamptz), fa, la, nullif(lu, '0001-01-01Z'::timestamptz), h, ev, $2, $2
FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[],
    $11::text[], $12::int[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[],
    $20::bool[], $21::text[], $22::text[], $23::text[], $24::text[], $25::timestamptz[], $26::timestamptz[],
    $27::timestamptz[], $28::timestamptz[], $29::bytea[], $30::jsonb[])
    AS x(id, src, tenant, inc, pinc, title, descr, rec, sev, rank, st, cls, det, cat, tac, tech, dsrc, exp, fam,
         devid, devname, url, ct, fa, la, lu, h, ev)
ON CONFLICT (org, id) DO UPDATE SET
    source = EXCLUDED.source, tenant = EXCLUDED.tenant, incident_id = EXCLUDED.incident_id,
    provider_incident = EXCLUDED.provider_incident, title = EXCLUDED.title, description = EXCLUDED.description,
    recommended = EXCLUDED.recommended, severity = EXCLUDED.severity, severity_rank = EXCLUDED.severity_rank,
    status = EXCLUDED.status, classification = EXCLUDED.classification, determination = EXCLUDED.determination,
    category = EXCLUDED.category, tactic = EXCLUDED.tactic, techniques = EXCLUDED.techniques,
    detection_source = EXCLUDED.detection_source, expert = EXCLUDED.expert, threat_family = EXCLUDED.threat_family,
    device_id = CASE WHEN EXCLUDED.device_id = '' THEN hunting_alerts.device_id ELSE EXCLUDED.device_id END,
    device_name = CASE WHEN EXCLUDED.device_name = '' THEN hunting_alerts.device_name ELSE EXCLUDED.device_name END,
    web_url = EXCLUDED.web_url, created_time = EXCLUDED.created_time, first_activity = EXCLUDED.first_activity,
    last_activity = EXCLUDED.last_activity, last_update = EXCLUDED.last_update, content_hash = EXCLUDED.content_hash,
    evidence = (SELECT coalesce(jsonb_agg(x ORDER BY o), '[]') FROM (
        SELECT x, min(o) AS o FROM jsonb_array_elements(EXCLUDED.evidence || hunting_alerts.evidence) WITH ORDINALITY e(x, o)
        GROUP BY x ORDER BY o LIMIT 256) kept), -- maxEvidence
    updated_at = EXCLUDED.updated_at`

func mk(n int) []string { return make([]string, n) }

// evidenceItem is an entity as kept in hunting_alerts.evidence, in short
// form: it is written for every alert.
type evidenceItem struct {
	Kind    EntityKind `json:"k"`
	Value   string     `json:"v"`
	Display string     `json:"d,omitempty"` // omitted when equal to Value
	Alt     string     `json:"a,omitempty"`
}

// queueIncidentEntities adds the batch's entities to their incidents'
// scope (and correlation index). An update's evidence is added, never
// removed. out learns, per incident, the strong entities that were new to
// it. Rows the cache knows to be stored already, with nothing to learn,
// are not sent at all; after learns what the statement stored. The rows
// of incidents this batch created (fresh: none of them is merged) are all
// new: they are not probed but returned, for copyFreshEntities.
func (c *prevalenceCache) queueIncidentEntities(b *pgx.Batch, org string, ws []*work, fresh map[int64]bool, out map[int64][]newEntity, after *cacheUpdate) *freshEntities {
	m := map[entKey]*entAgg{}
	order := []entKey{}
	for _, w := range ws {
		t := w.when()
		for _, e := range w.a.Entities {
			if !e.JoinKey {
				continue // scope detail: kept in the alert's evidence
			}
			k := entKey{w.inc, string(e.Kind), e.Value}
			g, ok := m[k]
			if !ok {
				g = &entAgg{display: e.Display, alt: e.Alt, join: e.JoinKey, first: t, last: t}
				m[k] = g
				order = append(order, k)
			}
			g.first, g.last = minTime(g.first, t), maxTime(g.last, t)
			if g.alt == "" {
				g.alt = e.Alt
			}
		}
	}
	// What the store is known to hold already, and would drop anyway.
	c.mu.Lock()
	keep := order[:0]
	for _, k := range order {
		if have, ok := c.entities[k]; ok && have.covers(m[k]) {
			continue
		}
		keep = append(keep, k)
	}
	c.mu.Unlock()
	order = keep
	if len(order) == 0 {
		return nil
	}
	sort.Slice(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if a.inc != b.inc {
			return a.inc < b.inc
		}
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.value < b.value
	})
	var fe *freshEntities
	if len(fresh) > 0 {
		fe = &freshEntities{org: org, m: m}
		probe := order[:0:0]
		for _, k := range order {
			if !fresh[k.inc] {
				probe = append(probe, k)
				continue
			}
			// Written as sent, in the statement's order.
			fe.keys = append(fe.keys, k)
			g := m[k]
			after.entities[k] = entSeen{first: g.first, last: g.last, display: g.display != "", alt: g.alt != ""}
			if kind := EntityKind(k.kind); kind == EntityDevice || kind == EntityUser || kind == EntityFile {
				out[k.inc] = append(out[k.inc], newEntity{inc: k.inc, kind: kind, value: k.value, display: g.display, join: g.join})
			}
		}
		order = probe
		if len(order) == 0 {
			return fe
		}
	}
	n := len(order)
	incs, kinds, values, displays, alts := make([]int64, n), mk(n), mk(n), mk(n), mk(n)
	joins, firsts, lasts := make([]bool, n), make([]time.Time, n), make([]time.Time, n)
	for i, k := range order {
		g := m[k]
		incs[i], kinds[i], values[i], displays[i], alts[i] = k.inc, k.kind, k.value, g.display, g.alt
		joins[i], firsts[i], lasts[i] = g.join, g.first, g.last
		// Sent and not written back: the stored row was within the hour
		// and knew as much (the statement's filter below).
		after.entities[k] = entSeen{first: g.first, last: g.last.Add(-time.Hour), display: g.display != "", alt: g.alt != ""}
	}
	b.Queue(`
WITH m AS (
    -- Read before writing, with a plain primary-key probe: most rows of a
    -- busy incident are already there and learn nothing (an hour of
    -- last_seen is precise enough for the window); they are dropped here.
    SELECT x.*, o.incident_id IS NOT NULL AS have
    FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::timestamptz[], $9::timestamptz[])
        AS x(inc, k, v, d, alt, j, f, l)
    LEFT JOIN hunting_incident_entities o ON o.incident_id = x.inc AND o.kind = x.k AND o.value = x.v
    WHERE o.incident_id IS NULL
       OR x.l > o.last_seen + interval '1 hour'
       OR x.f < o.first_seen
       OR (o.display = '' AND x.d <> '')
       OR (o.alt = '' AND x.alt <> '')
), up AS (
    UPDATE hunting_incident_entities e SET
        display = CASE WHEN e.display = '' THEN m.d ELSE e.display END,
        alt = CASE WHEN e.alt = '' THEN m.alt ELSE e.alt END,
        first_seen = least(e.first_seen, m.f),
        last_seen = greatest(e.last_seen, m.l)
    FROM m WHERE m.have AND e.incident_id = m.inc AND e.kind = m.k AND e.value = m.v
    RETURNING e.incident_id, e.kind, e.value, e.display, e.join_key, false AS new
), ins AS (
    -- The others are new: the org lock and the incidents' row locks are
    -- held, so no one else inserts them, and a plain INSERT skips the
    -- speculative insertion (an extra probe and WAL record per row) of ON
    -- CONFLICT.
    INSERT INTO hunting_incident_entities (incident_id, org, kind, value, display, alt, join_key, first_seen, last_seen)
    SELECT m.inc, $1, m.k, m.v, m.d, m.alt, m.j, m.f, m.l FROM m WHERE NOT m.have
    RETURNING incident_id, kind, value, display, join_key, true AS new
)
SELECT * FROM ins UNION ALL SELECT * FROM up`,
		org, incs, kinds, values, displays, alts, joins, firsts, lasts).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var e newEntity
			var isNew bool
			if err := rows.Scan(&e.inc, &e.kind, &e.value, &e.display, &e.join, &isNew); err != nil {
				return fmt.Errorf("store incident entities: %w", err)
			}
			k := entKey{e.inc, string(e.kind), e.value}
			g := m[k]
			// Written: the stored row holds at least what was sent.
			after.entities[k] = entSeen{first: g.first, last: g.last, display: g.display != "", alt: g.alt != ""}
			if isNew && (e.kind == EntityDevice || e.kind == EntityUser || e.kind == EntityFile) {
				out[e.inc] = append(out[e.inc], e)
			}
		}
		return nil
	})
	return fe
}

// freshEntities are the entity rows of the incidents a batch created.
type freshEntities struct {
	org  string
	m    map[entKey]*entAgg
	keys []entKey
}

// entityCols are hunting_incident_entities' columns as copyFreshEntities
// writes them.
var entityCols = []string{"incident_id", "org", "kind", "value", "display", "alt", "join_key", "first_seen", "last_seen"}

// copyFreshEntities inserts the entity rows of the incidents the batch
// created with COPY: no one else can hold these incident ids yet (they were
// allocated in this transaction), so the rows need neither the probe nor
// the conflict handling of the statement for the other incidents.
func copyFreshEntities(ctx context.Context, tx pgx.Tx, fe *freshEntities) error {
	if fe == nil || len(fe.keys) == 0 {
		return nil
	}
	i := -1
	row := make([]any, len(entityCols))
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i++; i >= len(fe.keys) {
			return nil, nil
		}
		k := fe.keys[i]
		g := fe.m[k]
		row[0], row[1], row[2], row[3], row[4] = k.inc, fe.org, k.kind, k.value, g.display
		row[5], row[6], row[7], row[8] = g.alt, g.join, g.first, g.last
		return row, nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"hunting_incident_entities"}, entityCols, src); err != nil {
		return fmt.Errorf("copy %d entities of new incidents: %w", len(fe.keys), err)
	}
	return nil
}

// entKey is an entity of an incident.
type entKey struct {
	inc         int64
	kind, value string
}

// entAgg is what a batch has of an entity of an incident.
type entAgg struct {
	display, alt string
	join         bool
	first, last  time.Time
}

// entSeen is what the store is known to hold of an entity of an incident,
// at least: first_seen no later than first, last_seen no earlier than
// last, a display and an alt when set. Rows only ever learn (first_seen
// moves back, last_seen forward, an empty display or alt is filled), and
// are deleted only when their incident is merged away, after which no
// alert is stored in it: so once true, this stays true.
type entSeen struct {
	first, last  time.Time
	display, alt bool
}

// covers reports whether the statement would drop g as teaching the
// stored row nothing.
func (h entSeen) covers(g *entAgg) bool {
	return !g.last.After(h.last.Add(time.Hour)) && !g.first.Before(h.first) &&
		(h.display || g.display == "") && (h.alt || g.alt == "")
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// commonCacheTTL is how long (on the service clock) a key found common is
// taken as common without asking the database again.
const commonCacheTTL = time.Hour

// maxCacheEntries bounds each cache map; past it the map starts over.
const maxCacheEntries = 1 << 20

// prevalenceCache saves prevalence work between batches: the entity-device
// rows this replica wrote lately, and the keys it found common. It is only
// a shortcut: the database stays the truth, and another replica without the
// cache computes the same answers.
type prevalenceCache struct {
	mu       sync.Mutex
	recorded map[devK]time.Time // org/kind/value/device -> last_seen written
	common   map[devK]time.Time // org/kind/value (no device) -> common until (service clock)
	// entities: what hunting_incident_entities is known to hold, so that
	// rows with nothing to teach it are not sent (see entSeen).
	entities map[entKey]entSeen
}

func newPrevalenceCache() *prevalenceCache {
	return &prevalenceCache{recorded: map[devK]time.Time{}, common: map[devK]time.Time{}, entities: map[entKey]entSeen{}}
}

// cacheUpdate is what a batch teaches the cache, applied only after commit.
type cacheUpdate struct {
	recorded map[devK]time.Time
	common   map[devK]time.Time
	entities map[entKey]entSeen
}

func newCacheUpdate() *cacheUpdate {
	return &cacheUpdate{recorded: map[devK]time.Time{}, common: map[devK]time.Time{}, entities: map[entKey]entSeen{}}
}

// forget empties the cache, after commits whose flush to disk was not
// confirmed: what they taught it may have been lost with the database.
func (c *prevalenceCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.recorded)
	clear(c.common)
	clear(c.entities)
}

func (c *prevalenceCache) apply(u *cacheUpdate) {
	if u == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.recorded)+len(u.recorded) > maxCacheEntries {
		c.recorded = map[devK]time.Time{}
	}
	if len(c.common)+len(u.common) > maxCacheEntries {
		c.common = map[devK]time.Time{}
	}
	// New keys are copied: an entity's value may be a piece of a sender's
	// much longer string, which a kept key would hold in memory whole.
	for k, t := range u.recorded {
		old, ok := c.recorded[k]
		if !ok {
			k = k.owned()
		}
		if t.After(old) {
			c.recorded[k] = t
		}
	}
	for k, t := range u.common {
		if _, ok := c.common[k]; !ok {
			k = k.owned()
		}
		c.common[k] = t
	}
	if len(c.entities)+len(u.entities) > maxCacheEntries {
		c.entities = map[entKey]entSeen{}
	}
	for k, e := range u.entities {
		// Both are true of the store: keep the stronger bounds.
		if o, ok := c.entities[k]; ok {
			e.first, e.last = minTime(e.first, o.first), maxTime(e.last, o.last)
			e.display, e.alt = e.display || o.display, e.alt || o.alt
		} else {
			k.kind, k.value = strings.Clone(k.kind), strings.Clone(k.value)
		}
		c.entities[k] = e
	}
}

// devK keys the prevalence cache: an entity of an org, and the device it
// was seen on (empty for the entity itself). A struct, not a joined
// string: looked up for every entity of every batch.
type devK struct{ org, kind, value, dev string }

// owned is k with its strings copied, for a key kept in a cache.
func (k devK) owned() devK {
	return devK{strings.Clone(k.org), strings.Clone(k.kind), strings.Clone(k.value), strings.Clone(k.dev)}
}

func devKey(org, kind, value, dev string) devK {
	return devK{org, kind, value, dev}
}
