package hunting

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
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
	Format    Format       `json:"format"`
	Accepted  int          `json:"accepted"`
	Updated   int          `json:"updated"`
	Unchanged int          `json:"unchanged"`
	Rejected  int          `json:"rejected"`
	Items     []ItemResult `json:"items"`
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
				if bind.org != "" && ie.Tenant != "" {
					// An unknown tenant is not this org's either.
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
	if len(alerts) > 0 {
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
		case StatusAccepted:
			res.Accepted++
		case StatusUpdated:
			res.Updated++
		case StatusUnchanged:
			res.Unchanged++
		case StatusRejected:
			res.Rejected++
		}
		s.m.items.WithLabelValues(string(it.Status)).Inc()
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
	workers := min(runtime.GOMAXPROCS(0), (len(items)+63)/64)
	if workers <= 1 {
		for i, raw := range items {
			out[i].a, out[i].src, out[i].err = normalize(raw, s.cfg.tenants)
		}
		return out
	}
	var wg sync.WaitGroup
	chunk := (len(items) + workers - 1) / workers
	for lo := 0; lo < len(items); lo += chunk {
		hi := min(lo+chunk, len(items))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				out[i].a, out[i].src, out[i].err = normalize(items[i], s.cfg.tenants)
			}
		})
	}
	wg.Wait()
	return out
}

// IngestAlerts stores already normalized alerts in one transaction and
// returns one result per alert, in order. An alert without Org is routed by
// its Tenant; an alert of an unknown tenant, or without an id or a time, is
// rejected.
func (s *Service) IngestAlerts(ctx context.Context, alerts []*Alert) ([]ItemResult, error) {
	start := time.Now()
	out := make([]ItemResult, len(alerts))
	byOrg := map[string][]int{}
	for i, a := range alerts {
		if a.Org == "" {
			a.Tenant = strings.ToLower(strings.TrimSpace(a.Tenant))
			a.Org = s.cfg.tenants[a.Tenant]
		}
		out[i] = ItemResult{Index: i, ID: a.ID, Source: a.Source, Org: a.Org, Tenant: a.Tenant}
		switch {
		case a.Org == "":
			out[i].Status, out[i].Reason = StatusRejected, fmt.Sprintf("unknown tenant %q: no org in the config lists it", a.Tenant)
			continue
		case a.ID == "" || len(a.ID) > maxIDLen:
			out[i].Status, out[i].Reason = StatusRejected, "missing or over-long alert id"
			continue
		case a.when().IsZero():
			out[i].Status, out[i].Reason = StatusRejected, "no creation or activity time"
			continue
		}
		if a.Severity == "" {
			a.Severity = SeverityInformational
		}
		byOrg[a.Org] = append(byOrg[a.Org], i)
	}
	orgs := make([]string, 0, len(byOrg))
	for o := range byOrg {
		orgs = append(orgs, o)
	}
	sort.Strings(orgs)
	var events int
	var after *cacheUpdate
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		after = newCacheUpdate()
		for _, org := range orgs {
			n, err := s.ingestOrg(ctx, tx, org, alerts, byOrg[org], out, after)
			if err != nil {
				return fmt.Errorf("hunting: ingest %d alerts of org %s: %w", len(byOrg[org]), org, err)
			}
			events += n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cache.apply(after)
	took := time.Since(start)
	s.m.batchDur.Observe(took.Seconds())
	s.log.Debug("ingested batch", "alerts", len(alerts), "orgs", len(orgs), "events", events, "took", took)
	return out, nil
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
	node    int
	inc     int64
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

// ingestOrg runs one org's part of a batch: dedup against the store,
// prevalence, correlation, writes, re-scoring and notification policy.
func (s *Service) ingestOrg(ctx context.Context, tx pgx.Tx, org string, alerts []*Alert, idx []int, out []ItemResult, after *cacheUpdate) (int, error) {
	now := s.cfg.Now().UTC()
	// The last item with a given id wins (the newest lastUpdate).
	last := make(map[string]int, len(idx))
	for _, i := range idx {
		a := alerts[i]
		if j, ok := last[a.ID]; ok {
			if alerts[j].LastUpdate.After(a.LastUpdate) {
				out[i].Status, out[i].Reason = StatusUnchanged, "an item later in the request has a newer version of this alert"
				continue
			}
			out[j].Status, out[j].Reason = StatusUpdated, "superseded by a later item in the same request"
		}
		last[a.ID] = i
	}
	ws := make([]*work, 0, len(last))
	ids := make([]string, 0, len(last))
	for _, i := range idx {
		if j, ok := last[alerts[i].ID]; ok && j == i {
			h := alerts[i].hash
			if h == nil {
				h = alertHash(alerts[i])
			}
			w := &work{a: alerts[i], res: &out[i], hash: h}
			ws = append(ws, w)
			ids = append(ids, w.a.ID)
		}
	}
	// One writer per org at a time (across replicas): correlation reads
	// then writes the org's incidents. The lock and the look-up of known
	// alerts (unchanged, stale, or an update) go in one round trip.
	type known struct {
		inc  int64
		hash []byte
		lu   *time.Time
		open bool
	}
	have := map[string]known{}
	kb := &pgx.Batch{}
	kb.Queue(lockOrgSQL, org)
	kb.Queue(`
SELECT a.id, a.incident_id, a.content_hash, a.last_update, i.status = 'open'
FROM hunting_alerts a JOIN hunting_incidents i ON i.id = a.incident_id
WHERE a.org = $1 AND a.id = ANY($2)`, org, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var k known
			if err := rows.Scan(&id, &k.inc, &k.hash, &k.lu, &k.open); err != nil {
				return fmt.Errorf("scan known alert: %w", err)
			}
			have[id] = k
		}
		return nil
	})
	if err := tx.SendBatch(ctx, kb).Close(); err != nil {
		return 0, fmt.Errorf("lock org %s and load known alerts: %w", org, err)
	}
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
		live = append(live, w)
	}
	ws = live
	if len(ws) == 0 {
		return 0, nil
	}

	// Prevalence: record on which device each strong entity was seen, then
	// find the entities seen on too many devices in the window.
	minT, maxT := ws[0].a.when(), ws[0].a.when()
	type dkey struct{ kind, value, dev string }
	seen := map[dkey]time.Time{}
	for _, w := range ws {
		t := w.a.when()
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
	// skipped: the stored last_seen is good enough for the window.
	// Keys known to be common need no more sightings until the cache entry
	// runs out (then the next batch records its sightings and counts again).
	s.cache.mu.Lock()
	for k, t := range seen {
		if at, ok := s.cache.recorded[devKey(org, k.kind, k.value, k.dev)]; ok && t.Before(at.Add(time.Hour)) {
			delete(seen, k)
			continue
		}
		if until, ok := s.cache.common[devKey(org, k.kind, k.value, "")]; ok && now.Before(until) {
			delete(seen, k)
		}
	}
	s.cache.mu.Unlock()
	pb := &pgx.Batch{}
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
		pb.Queue(`
INSERT INTO hunting_entity_devices (org, kind, value, device, last_seen)
SELECT $1, x.k, x.v, x.d, x.t FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS x(k, v, d, t)
-- Read before writing: ON CONFLICT DO UPDATE locks (and so writes) every
-- conflicting row, even those its WHERE then skips. Rows that are already
-- recent enough are dropped here, with a plain index probe.
LEFT JOIN hunting_entity_devices o ON o.org = $1 AND o.kind = x.k AND o.value = x.v AND o.device = x.d
WHERE o.org IS NULL OR o.last_seen < x.t - interval '1 hour'
ON CONFLICT (org, kind, value, device) DO UPDATE SET last_seen = EXCLUDED.last_seen
    -- An hour's precision is plenty for a 24-hour window and saves most rewrites.
    WHERE hunting_entity_devices.last_seen < EXCLUDED.last_seen - interval '1 hour'`,
			org, kinds, values, devs, ts)
	}
	keySet := map[ekey]struct{}{}
	for _, w := range ws {
		if w.update && !w.prevOK {
			continue // stays in its closed incident; never correlates
		}
		for _, e := range w.a.Entities {
			if e.JoinKey {
				keySet[ekey{string(e.Kind), e.Value}] = struct{}{}
			}
		}
	}
	common, rare := map[ekey]bool{}, map[ekey]bool{}
	kinds, values := make([]string, 0, len(keySet)), make([]string, 0, len(keySet))
	s.cache.mu.Lock()
	for k := range keySet {
		if k.kind == string(EntityDevice) {
			continue
		}
		// A key found common a little while ago is still common.
		if until, ok := s.cache.common[devKey(org, k.kind, k.value, "")]; ok && now.Before(until) {
			common[k] = true
			continue
		}
		kinds = append(kinds, k.kind)
		values = append(values, k.value)
	}
	s.cache.mu.Unlock()
	if len(kinds) > 0 {
		pb.Queue(`
SELECT k.kind, k.value, c.n FROM unnest($2::text[], $3::text[]) AS k(kind, value)
CROSS JOIN LATERAL (
    -- Counting stops at the threshold: a popular key costs no more than a rare one.
    SELECT count(*) AS n FROM (
        SELECT 1 FROM hunting_entity_devices d
        WHERE d.org = $1 AND d.kind = k.kind AND d.value = k.value AND d.last_seen >= $4
        LIMIT $5) x) c
WHERE c.n <= 2 OR c.n >= $5`, org, kinds, values, minT.Add(-s.cfg.Window), s.cfg.CommonEntityDevices).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k ekey
				var n int
				if err := rows.Scan(&k.kind, &k.value, &n); err != nil {
					return fmt.Errorf("scan prevalence: %w", err)
				}
				if n >= s.cfg.CommonEntityDevices {
					common[k] = true
					after.common[devKey(org, k.kind, k.value, "")] = now.Add(commonCacheTTL)
				} else {
					rare[k] = true
				}
			}
			return nil
		})
	}
	// One round trip: record this batch's sightings, then count (the count
	// sees them: same transaction, statements in order).
	if err := tx.SendBatch(ctx, pb).Close(); err != nil {
		return 0, fmt.Errorf("record and measure entity prevalence: %w", err)
	}
	// Join keys: strong, not common.
	kinds, values = kinds[:0], values[:0]
	for _, w := range ws {
		if w.update && !w.prevOK {
			continue
		}
		for _, e := range w.a.Entities {
			k := ekey{string(e.Kind), e.Value}
			if e.JoinKey && !common[k] {
				w.keys = append(w.keys, e)
			}
		}
	}
	for k := range keySet {
		if !common[k] {
			kinds = append(kinds, k.kind)
			values = append(values, k.value)
		}
	}
	// Open incidents holding any join key within reach of the batch.
	type cand struct {
		inc         int64
		first, last time.Time
	}
	cands := map[ekey][]cand{}
	if len(kinds) > 0 {
		rows, err := tx.Query(ctx, `
SELECT k.kind, k.value, ie.incident_id, ie.first_seen, ie.last_seen
FROM unnest($2::text[], $3::text[]) AS k(kind, value)
CROSS JOIN LATERAL (
    -- One index probe per key, and at most $6 incidents per key: a key in
    -- that many open incidents is glue, not evidence (the caller drops it).
    SELECT e.incident_id, e.first_seen, e.last_seen
    FROM hunting_incident_entities e
    WHERE e.org = $1 AND e.kind = k.kind AND e.value = k.value AND e.kind IN ('device', 'user', 'file', 'ip', 'url')
      AND e.join_key AND e.last_seen >= $4 AND e.first_seen <= $5
      -- Only open incidents: a probe of the small index of the others,
      -- not of every incident row.
      AND NOT EXISTS (SELECT 1 FROM hunting_incidents i WHERE i.id = e.incident_id AND i.status <> 'open')
    LIMIT $6) ie`, org, kinds, values, minT.Add(-s.cfg.Window), maxT.Add(s.cfg.Window), s.cfg.CommonEntityDevices)
		if err != nil {
			return 0, fmt.Errorf("find incidents to join: %w", err)
		}
		for rows.Next() {
			var c cand
			var k ekey
			if err := rows.Scan(&k.kind, &k.value, &c.inc, &c.first, &c.last); err != nil {
				rows.Close()
				return 0, fmt.Errorf("scan incident entity: %w", err)
			}
			cands[k] = append(cands[k], c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, fmt.Errorf("find incidents to join: %w", err)
		}
		for k, cs := range cands {
			if len(cs) >= s.cfg.CommonEntityDevices {
				delete(cands, k)
				common[k] = true
			}
		}
	}

	// Union-find over the batch's alerts and the existing incidents.
	uf := newUnionFind(len(ws))
	incNode := map[int64]int{}
	node := func(inc int64) int {
		if n, ok := incNode[inc]; ok {
			return n
		}
		n := uf.add()
		incNode[inc] = n
		return n
	}
	type member struct {
		t time.Time
		n int
	}
	byKey := map[ekey][]member{}
	linkReason := map[int]string{}
	for i, w := range ws {
		w.node = i
		if w.update && w.prevOK {
			uf.union(i, node(w.prevInc))
		}
		t := w.a.when()
		for _, e := range w.keys {
			k := ekey{string(e.Kind), e.Value}
			if common[k] {
				continue
			}
			byKey[k] = append(byKey[k], member{t, i})
			for _, c := range cands[k] {
				if !t.Before(c.first.Add(-s.cfg.Window)) && !t.After(c.last.Add(s.cfg.Window)) {
					n := node(c.inc)
					if uf.find(n) != uf.find(i) {
						linkReason[i] = fmt.Sprintf("shared %s %s", e.Kind, e.Display)
					}
					uf.union(i, n)
				}
			}
		}
	}
	for _, ms := range byKey {
		if len(ms) < 2 {
			continue
		}
		sort.Slice(ms, func(a, b int) bool { return ms[a].t.Before(ms[b].t) })
		for j := 1; j < len(ms); j++ {
			if ms[j].t.Sub(ms[j-1].t) <= s.cfg.Window {
				uf.union(ms[j-1].n, ms[j].n)
			}
		}
	}
	// Components: survivor = oldest existing incident; others merge into it.
	compInc := map[int][]int64{}
	for inc, n := range incNode {
		r := uf.find(n)
		compInc[r] = append(compInc[r], inc)
	}
	var merges []mergeRec
	survivor := map[int]int64{}
	for r, incs := range compInc {
		slices.Sort(incs)
		survivor[r] = incs[0]
		for _, from := range incs[1:] {
			merges = append(merges, mergeRec{from: from, into: incs[0]})
		}
	}
	// Closed-incident updates keep their incident.
	var needNew []int
	newFor := map[int]int{} // component root -> index into needNew
	for _, w := range ws {
		if w.update && !w.prevOK {
			w.inc = w.prevInc
			continue
		}
		r := uf.find(w.node)
		if inc, ok := survivor[r]; ok {
			w.inc = inc
			continue
		}
		if _, ok := newFor[r]; !ok {
			newFor[r] = len(needNew)
			needNew = append(needNew, r)
		}
	}
	if len(needNew) > 0 {
		rows, err := tx.Query(ctx, `
INSERT INTO hunting_incidents (org, created_at, updated_at)
SELECT $1, $2, $2 FROM generate_series(1, $3) RETURNING id`, org, now, len(needNew))
		if err != nil {
			return 0, fmt.Errorf("create incidents: %w", err)
		}
		newIDs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return 0, fmt.Errorf("create incidents: %w", err)
		}
		slices.Sort(newIDs)
		for r, i := range newFor {
			survivor[r] = newIDs[i]
		}
		for _, w := range ws {
			if w.inc == 0 {
				w.inc = survivor[uf.find(w.node)]
			}
		}
		s.m.incidents.Add(float64(len(newIDs)))
	}
	for _, w := range ws {
		w.res.IncidentID = w.inc
	}
	// Explain merges: the first alert of the component that linked them.
	for i := range merges {
		m := &merges[i]
		for _, w := range ws {
			if w.inc == m.into {
				m.alert = w.a.ID
				m.reason = cmp.Or(linkReason[w.node], "shared entity")
				if linkReason[w.node] != "" {
					break
				}
			}
		}
	}
	// Lock and read every incident the batch touches, merged ones included,
	// before anything moves.
	touched := map[int64]bool{}
	for _, w := range ws {
		touched[w.inc] = true
	}
	for _, m := range merges {
		touched[m.from] = true
	}
	ids64 := make([]int64, 0, len(touched))
	for id := range touched {
		ids64 = append(ids64, id)
	}
	slices.Sort(ids64)
	sts, err := loadStates(ctx, tx, org, ids64, nil, false)
	if err != nil {
		return 0, err
	}
	fold := &batchFold{alerts: map[int64][]*work{}, absorbed: map[int64][]*incState{}, recount: map[int64]bool{}, rare: rare}
	for _, w := range ws {
		fold.alerts[w.inc] = append(fold.alerts[w.inc], w)
	}
	byID := make(map[int64]*incState, len(sts))
	for _, st := range sts {
		byID[st.ID] = st
	}
	// Merges, alerts and entities go to the server as one pipeline.
	b := &pgx.Batch{}
	posted := map[int64]bool{}
	if len(merges) > 0 {
		queueMerges(b, org, now, merges, posted)
		for _, m := range merges {
			if o := byID[m.from]; o != nil {
				fold.absorbed[m.into] = append(fold.absorbed[m.into], o)
			}
			fold.recount[m.into] = true
			delete(byID, m.from)
		}
	}
	if err := queueAlerts(b, org, now, ws); err != nil {
		return 0, err
	}
	fold.entities = map[int64][]newEntity{}
	queueIncidentEntities(b, org, ws, fold.entities)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("store %d alerts, their entities and %d merges: %w", len(ws), len(merges), err)
	}
	var events int
	if len(merges) > 0 {
		n, err := s.mergeEvents(ctx, tx, org, now, merges, posted)
		if err != nil {
			return 0, err
		}
		events += n
	}
	keep := make([]*incState, 0, len(byID))
	for _, st := range sts {
		if byID[st.ID] != nil {
			keep = append(keep, st)
		}
	}
	n, err := s.refresh(ctx, tx, keep, fold, now)
	if err != nil {
		return 0, err
	}
	return events + n, nil
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
		if err := s.appendEvent(ctx, tx, EventMerged, EventPayload{Org: org, IncidentID: m.from, MergedInto: m.into, Reason: m.reason, At: now}); err != nil {
			return 0, err
		}
		events++
	}
	return events, nil
}

// queueAlerts queues the upsert of the batch's alerts.
func queueAlerts(b *pgx.Batch, org string, now time.Time, ws []*work) error {
	n := len(ws)
	var (
		ids, sources, tenants, incs, provInc, titles, descs, recs, sevs, statuses, classes, determs = mk(n), mk(n), mk(n), make([]int64, n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n)
		cats, tactics, techs, dets, families, devIDs, devNames, urls                                = mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n), mk(n)
		ranks                                                                                       = make([]int32, n)
		experts                                                                                     = make([]bool, n)
		created, first, lastAct, lastUpd                                                            = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		hashes, evidence                                                                            = make([][]byte, n), make([][]byte, n)
	)
	for i, w := range ws {
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
	// New alerts (none of these ids is stored: the org lock is held since
	// they were looked up) are plainly inserted; a speculative insertion per
	// row (ON CONFLICT) costs more. Updates go through the upsert.
	newSQL, updSQL := alertsSQL, alertsSQL+alertsConflictSQL
	var nNew int
	for _, w := range ws {
		if !w.update {
			nNew++
		}
	}
	args := []any{org, now, ids, sources, tenants, incs, provInc, titles, descs, recs, sevs, ranks, statuses, classes, determs,
		cats, tactics, techs, dets, experts, families, devIDs, devNames, urls, created, first, lastAct, lastUpd, hashes, evidence}
	switch nNew {
	case n:
		b.Queue(newSQL, args...)
	case 0:
		b.Queue(updSQL, args...)
	default:
		// Split every column array in two: new alerts, then updates.
		newArgs, updArgs := []any{org, now}, []any{org, now}
		for _, col := range args[2:] {
			nc, uc := splitCol(col, ws)
			newArgs, updArgs = append(newArgs, nc), append(updArgs, uc)
		}
		b.Queue(newSQL, newArgs...)
		b.Queue(updSQL, updArgs...)
	}
	return nil
}

// splitCol splits one column array of queueAlerts by ws[i].update.
func splitCol(col any, ws []*work) (any, any) {
	switch c := col.(type) {
	case []string:
		return splitBy(c, ws)
	case []int64:
		return splitBy(c, ws)
	case []int32:
		return splitBy(c, ws)
	case []bool:
		return splitBy(c, ws)
	case []time.Time:
		return splitBy(c, ws)
	case [][]byte:
		return splitBy(c, ws)
	}
	panic(fmt.Sprintf("hunting: splitCol: unexpected column type %T", col))
}

func splitBy[T any](c []T, ws []*work) ([]T, []T) {
	var nw, up []T
	for i, w := range ws {
		if w.update {
			up = append(up, c[i])
		} else {
			nw = append(nw, c[i])
		}
	}
	return nw, up
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

const alertsSQL = `
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
         devid, devname, url, ct, fa, la, lu, h, ev)`

const alertsConflictSQL = `
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
    evidence = (SELECT coalesce(jsonb_agg(DISTINCT x), '[]') FROM jsonb_array_elements(hunting_alerts.evidence || EXCLUDED.evidence) x),
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

// writeIncidentEntities adds the batch's entities to their incidents' scope
// (and correlation index). An update's evidence is added, never removed.
// out learns, per incident, the strong entities that were new to it.
func queueIncidentEntities(b *pgx.Batch, org string, ws []*work, out map[int64][]newEntity) {
	type key struct {
		inc         int64
		kind, value string
	}
	type agg struct {
		display, alt string
		join         bool
		first, last  time.Time
	}
	m := map[key]*agg{}
	order := []key{}
	for _, w := range ws {
		t := w.a.when()
		for _, e := range w.a.Entities {
			if !e.JoinKey {
				continue // scope detail: kept in the alert's evidence
			}
			k := key{w.inc, string(e.Kind), e.Value}
			g, ok := m[k]
			if !ok {
				g = &agg{display: e.Display, alt: e.Alt, join: e.JoinKey, first: t, last: t}
				m[k] = g
				order = append(order, k)
			}
			g.first, g.last = minTime(g.first, t), maxTime(g.last, t)
			if g.alt == "" {
				g.alt = e.Alt
			}
		}
	}
	if len(order) == 0 {
		return
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
	n := len(order)
	incs, kinds, values, displays, alts := make([]int64, n), mk(n), mk(n), mk(n), mk(n)
	joins, firsts, lasts := make([]bool, n), make([]time.Time, n), make([]time.Time, n)
	for i, k := range order {
		g := m[k]
		incs[i], kinds[i], values[i], displays[i], alts[i] = k.inc, k.kind, k.value, g.display, g.alt
		joins[i], firsts[i], lasts[i] = g.join, g.first, g.last
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
)
-- The others are new: the org lock and the incidents' row locks are held, so
-- no one else inserts them, and a plain INSERT skips the speculative
-- insertion (an extra probe and WAL record per row) of ON CONFLICT.
INSERT INTO hunting_incident_entities (incident_id, org, kind, value, display, alt, join_key, first_seen, last_seen)
SELECT m.inc, $1, m.k, m.v, m.d, m.alt, m.j, m.f, m.l FROM m WHERE NOT m.have
RETURNING incident_id, kind, value, display, join_key`,
		org, incs, kinds, values, displays, alts, joins, firsts, lasts).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var e newEntity
			if err := rows.Scan(&e.inc, &e.kind, &e.value, &e.display, &e.join); err != nil {
				return fmt.Errorf("store incident entities: %w", err)
			}
			// Every row returned was inserted: the entity is new to the incident.
			if e.kind == EntityDevice || e.kind == EntityUser || e.kind == EntityFile {
				out[e.inc] = append(out[e.inc], e)
			}
		}
		return nil
	})
}

type unionFind struct{ parent []int }

func newUnionFind(n int) *unionFind {
	u := &unionFind{parent: make([]int, n)}
	for i := range u.parent {
		u.parent[i] = i
	}
	return u
}

func (u *unionFind) add() int {
	u.parent = append(u.parent, len(u.parent))
	return len(u.parent) - 1
}

func (u *unionFind) find(x int) int {
	for u.parent[x] != x {
		u.parent[x] = u.parent[u.parent[x]]
		x = u.parent[x]
	}
	return x
}

func (u *unionFind) union(a, b int) {
	ra, rb := u.find(a), u.find(b)
	if ra != rb {
		u.parent[rb] = ra
	}
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
	recorded map[string]time.Time // org/kind/value/device -> last_seen written
	common   map[string]time.Time // org/kind/value -> common until (service clock)
}

func newPrevalenceCache() *prevalenceCache {
	return &prevalenceCache{recorded: map[string]time.Time{}, common: map[string]time.Time{}}
}

// cacheUpdate is what a batch teaches the cache, applied only after commit.
type cacheUpdate struct {
	recorded map[string]time.Time
	common   map[string]time.Time
}

func newCacheUpdate() *cacheUpdate {
	return &cacheUpdate{recorded: map[string]time.Time{}, common: map[string]time.Time{}}
}

func (c *prevalenceCache) apply(u *cacheUpdate) {
	if u == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.recorded)+len(u.recorded) > maxCacheEntries {
		c.recorded = map[string]time.Time{}
	}
	if len(c.common)+len(u.common) > maxCacheEntries {
		c.common = map[string]time.Time{}
	}
	for k, t := range u.recorded {
		if t.After(c.recorded[k]) {
			c.recorded[k] = t
		}
	}
	for k, t := range u.common {
		c.common[k] = t
	}
}

func devKey(org, kind, value, dev string) string {
	return org + "\x00" + kind + "\x00" + value + "\x00" + dev
}
