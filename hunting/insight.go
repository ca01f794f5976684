package hunting

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Expert insight (issue 19): what hunting knows of an IP address, a URL or
// domain, a file or a threat family in one org, and where else (in which
// other orgs) the same indicators were seen. Only experts see another org's
// sightings (the insight package and the bot keep it so); every function
// here that takes an org reads that org's data only.
//
// Sightings read the stored incidents' entities through indexes that start
// with the entity (migrations/0021_insight.sql), never a scan, and nothing
// is written at ingest beyond those index entries. An indicator on the
// common list never counts: one the hunting guard treats as common (seen on
// CommonEntityDevices devices or more in an org, by the prevalence table),
// or held by CommonEntityDevices incidents or more of one org within the
// window, the long-window twin of the guard's "glue" rule. It is no
// sighting in an org where it is common, and none anywhere when common in
// the org asking or in two orgs or more (Sightings).

// KeyKind is what an indicator is.
type KeyKind string

// Indicator kinds.
const (
	// KeyFile is a file's SHA-256 or SHA-1 (lower case).
	KeyFile KeyKind = "file"
	// KeyIP is an IP address, as netip prints it.
	KeyIP KeyKind = "ip"
	// KeyURL is a URL, lower case (as hunting stores URLs).
	KeyURL KeyKind = "url"
	// KeyDomain is a URL's host, lower case.
	KeyDomain KeyKind = "domain"
	// KeyFamily is a detection's threat family (the one titling an
	// incident), lower case.
	KeyFamily KeyKind = "family"
)

// Key is one indicator.
type Key struct {
	Kind  KeyKind `json:"kind"`
	Value string  `json:"value"`
}

// String is "kind value".
func (k Key) String() string { return string(k.Kind) + " " + k.Value }

// urlHostPattern takes a URL's host (after an optional scheme and user).
// urlHostSQL is the same in SQL, written exactly as the index
// hunting_incident_entities_url_host_recent_idx is built, so that the planner uses
// it.
const urlHostPattern = `^(?:[a-z][a-z0-9+.-]*://)?(?:[^/?#@]*@)?([^/?#:@]+)`

const urlHostSQL = `substring(e.value from '` + urlHostPattern + `')`

var urlHostRE = regexp.MustCompile(urlHostPattern)

// URLHost returns the host of a URL as hunting indexes it: lower case,
// without scheme, user, port or path ("" when there is none).
func URLHost(u string) string {
	m := urlHostRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(u)))
	if m == nil {
		return ""
	}
	return m[1]
}

// NormalizeIP returns an address as hunting stores it: netip's form,
// IPv4-mapped addresses unmapped.
func NormalizeIP(s string) (string, bool) {
	ip, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return "", false
	}
	return ip.Unmap().String(), true
}

// isURL reports whether s has a scheme (then it is a URL, else a domain).
func isURL(s string) bool { return strings.Contains(s, "://") }

// NormalizeFamily is a threat family as a key: lower case, spaces
// collapsed.
func NormalizeFamily(s string) string { return strings.Join(strings.Fields(strings.ToLower(s)), " ") }

// commodityFamily reports whether a family names commodity software (PUA,
// adware, test files), which is never a sighting.
func commodityFamily(f string) bool { return commodityText(f) }

// Limits of the insight reads.
const (
	// maxSubjectKeys bounds the indicators taken from one subject.
	maxSubjectKeys = 50
	// maxSightingIncidents is how many incidents a sighting names.
	maxSightingIncidents = 5
	// maxKnownListed is how many incidents, devices and alerts Known names.
	maxKnownListed = 10
)

// keysOf reads an indicator of a case subject: kind is the case's subject
// kind (file, ip, url, actor).
func keysOf(kind, id string) []Key {
	id = strings.TrimSpace(id)
	switch kind {
	case "file":
		if h := strings.ToLower(id); hashRE.MatchString(h) {
			return []Key{{KeyFile, h}}
		}
	case "ip":
		if ip, ok := NormalizeIP(id); ok {
			return []Key{{KeyIP, ip}}
		}
	case "url":
		u := strings.ToLower(id)
		host := URLHost(u)
		if isURL(u) {
			if host == "" {
				return []Key{{KeyURL, u}}
			}
			return []Key{{KeyURL, u}, {KeyDomain, host}}
		}
		if host != "" {
			return []Key{{KeyDomain, host}}
		}
	case "actor":
		if f := NormalizeFamily(id); f != "" {
			return []Key{{KeyFamily, f}}
		}
	}
	return nil
}

// SubjectKeys returns the indicators a case subject of org involves: the
// subject itself for a file, an IP address, a URL or domain, or an actor
// (its threat family); for an alert or an incident, the files, addresses,
// URLs and domains of its incident and the family that titles it; for a
// device, those of its incidents active since since. kind is the case's
// subject kind. An alert, incident or device hunting does not know has no
// indicators.
func (s *Service) SubjectKeys(ctx context.Context, org, kind, id string, since time.Time) ([]Key, error) {
	switch kind {
	case "file", "ip", "url", "actor":
		keys := keysOf(kind, id)
		if kind == "file" && len(keys) == 1 {
			// The other hash of the same file, where this org has both.
			var v, alt string
			err := s.pool.QueryRow(ctx, `
SELECT e.value, e.alt FROM hunting_incident_entities e
WHERE e.org = $1 AND e.kind = 'file' AND e.kind IN ('device', 'user', 'file', 'ip', 'url')
  AND (e.value = $2 OR (e.alt = $2 AND e.alt <> '')) LIMIT 1`, org, keys[0].Value).Scan(&v, &alt)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
			case err != nil:
				return nil, fmt.Errorf("hunting: the hashes of file %s: %w", keys[0].Value, err)
			case v != keys[0].Value && hashRE.MatchString(v):
				keys = append(keys, Key{KeyFile, v})
			case alt != "" && alt != keys[0].Value:
				keys = append(keys, Key{KeyFile, alt})
			}
		}
		return keys, nil
	case "alert":
		var inc int64
		err := s.pool.QueryRow(ctx, `SELECT incident_id FROM hunting_alerts WHERE org = $1 AND id = $2`, org, strings.TrimSpace(id)).Scan(&inc)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("hunting: the incident of alert %q: %w", clip(id, maxIDLen), err)
		}
		return s.incidentKeys(ctx, org, []int64{inc})
	case "incident":
		n, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(id), "#"), 10, 64)
		if err != nil || n <= 0 {
			return nil, nil
		}
		return s.incidentKeys(ctx, org, []int64{n})
	case "device":
		q := strings.ToLower(strings.TrimSpace(clip(id, maxShortLen)))
		rows, err := s.pool.Query(ctx, `
SELECT DISTINCT e.incident_id FROM hunting_incident_entities e
WHERE e.org = $1 AND e.kind = 'device' AND (e.value = $2 OR e.value = 'name:' || $2 OR lower(e.display) = $2) AND e.last_seen >= $3
LIMIT 3`, org, q, since)
		if err != nil {
			return nil, fmt.Errorf("hunting: the incidents of device %q: %w", q, err)
		}
		incs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return nil, fmt.Errorf("hunting: the incidents of device %q: %w", q, err)
		}
		return s.incidentKeys(ctx, org, incs)
	}
	return nil, nil
}

// incidentKeys returns the files, addresses, URLs (with their domains) and
// title family of org's incidents incs, newest first, at most
// maxSubjectKeys.
func (s *Service) incidentKeys(ctx context.Context, org string, incs []int64) ([]Key, error) {
	if len(incs) == 0 {
		return nil, nil
	}
	var keys []Key
	seen := map[Key]bool{}
	add := func(k Key) {
		if k.Value != "" && !seen[k] && len(keys) < maxSubjectKeys {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	b := &pgx.Batch{}
	b.Queue(`
SELECT i.title_family FROM (SELECT DISTINCT unnest($2::bigint[])) AS want(inc)
-- One probe per incident, the org checked outside (see loadStatesSQL).
CROSS JOIN LATERAL (SELECT i.org, i.title_family FROM hunting_incidents i WHERE i.id = want.inc LIMIT 1) i
WHERE i.org = $1 AND i.title_family <> ''`, org, incs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var f string
			if err := rows.Scan(&f); err != nil {
				return err
			}
			if f = NormalizeFamily(f); !commodityFamily(f) {
				add(Key{KeyFamily, f})
			}
		}
		return rows.Err()
	})
	b.Queue(`
SELECT e.kind, e.value, e.alt FROM (SELECT DISTINCT unnest($2::bigint[])) AS want(inc)
CROSS JOIN LATERAL (
    SELECT e.org, e.kind, e.value, e.alt, e.last_seen FROM hunting_incident_entities e
    WHERE e.incident_id = want.inc AND e.kind IN ('file', 'ip', 'url') AND e.join_key
    ORDER BY e.last_seen DESC LIMIT $3) e
WHERE e.org = $1
ORDER BY e.last_seen DESC LIMIT $3`, org, incs, maxSubjectKeys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var kind, v, alt string
			if err := rows.Scan(&kind, &v, &alt); err != nil {
				return err
			}
			switch EntityKind(kind) {
			case EntityFile:
				if hashRE.MatchString(v) {
					add(Key{KeyFile, v})
				}
			case EntityIP:
				add(Key{KeyIP, v})
			case EntityURL:
				add(Key{KeyURL, v})
				add(Key{KeyDomain, URLHost(v)})
			}
		}
		return rows.Err()
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("hunting: the indicators of incidents %v: %w", incs, err)
	}
	return keys, nil
}

// OrgSighting is where an org's incidents hold some of the indicators
// looked up.
type OrgSighting struct {
	Org string `json:"org"`
	// Keys are the indicators seen there.
	Keys []Key `json:"keys"`
	// Incidents are the org's incidents holding them, most recently active
	// first (at most maxSightingIncidents); IncidentCount counts them all.
	Incidents     []IncidentRef `json:"incidents"`
	IncidentCount int           `json:"incident_count"`
	// Devices counts the distinct devices of those incidents.
	Devices int `json:"devices"`
	// First and Last bound when the indicators were seen there.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// hit is one incident holding one indicator.
type hit struct {
	key         Key
	stored      string // the entity's value (a SHA-256 found by its SHA-1)
	org         string
	inc         int64
	first, last time.Time
}

// Sightings is the answer of Service.Sightings.
type Sightings struct {
	// Orgs are the orgs (other than the one asking) where the indicators
	// were seen, the last sighting first.
	Orgs []OrgSighting `json:"orgs"`
	// Common are the indicators left out for being common: in except, or
	// in two orgs or more.
	Common []Key `json:"common"`
}

// Sightings returns, per org other than except, where keys were seen
// since since: the org's incidents holding them, their devices, and when.
// Common indicators (see the top of this file) never count: one common in
// an org is no sighting there, and one common in except (the guard's list
// of the org asking) or in two orgs or more (shared infrastructure,
// everyday software) is left out everywhere and listed in Common. One org
// alone, by sending alerts that make an indicator common there (or by an
// outbreak on its own devices), cannot hide two other orgs' sightings of
// it from the experts.
func (s *Service) Sightings(ctx context.Context, keys []Key, since time.Time, except string) (Sightings, error) {
	var res Sightings
	keys = dedupeKeys(keys)
	if len(keys) == 0 {
		return res, nil
	}
	hits, err := s.keyHits(ctx, keys, since)
	if err != nil {
		return res, err
	}
	commonIn, err := s.commonKeys(ctx, hits)
	if err != nil {
		return res, err
	}
	common := map[Key]bool{}
	for _, k := range keys {
		if orgs := commonIn[k]; len(orgs) >= 2 || orgs[except] {
			common[k] = true
			res.Common = append(res.Common, k)
		}
	}
	type agg struct {
		s    *OrgSighting
		incs map[int64]time.Time
		keys map[Key]bool
	}
	by := map[string]*agg{}
	for _, h := range hits {
		if h.org == except || common[h.key] || commonIn[h.key][h.org] {
			continue
		}
		a := by[h.org]
		if a == nil {
			a = &agg{s: &OrgSighting{Org: h.org, First: h.first, Last: h.last}, incs: map[int64]time.Time{}, keys: map[Key]bool{}}
			by[h.org] = a
		}
		a.s.First, a.s.Last = minTime(a.s.First, h.first), maxTime(a.s.Last, h.last)
		a.incs[h.inc] = maxTime(a.incs[h.inc], h.last)
		if !a.keys[h.key] {
			a.keys[h.key] = true
			a.s.Keys = append(a.s.Keys, h.key)
		}
	}
	if len(by) == 0 {
		return res, nil
	}
	var ids []int64
	for _, a := range by {
		for id := range a.incs {
			ids = append(ids, id)
		}
	}
	refs, devs, err := s.incidentRefs(ctx, ids)
	if err != nil {
		return res, err
	}
	out := make([]OrgSighting, 0, len(by))
	for _, a := range by {
		incs := make([]int64, 0, len(a.incs))
		for id := range a.incs {
			incs = append(incs, id)
		}
		sort.Slice(incs, func(i, j int) bool {
			ti, tj := a.incs[incs[i]], a.incs[incs[j]]
			if !ti.Equal(tj) {
				return ti.After(tj)
			}
			return incs[i] > incs[j]
		})
		a.s.IncidentCount = len(incs)
		names := map[string]bool{}
		most := 0
		for i, id := range incs {
			if r, ok := refs[id]; ok && i < maxSightingIncidents {
				a.s.Incidents = append(a.s.Incidents, r)
			}
			for _, d := range devs[id].names {
				names[d] = true
			}
			most = max(most, devs[id].count)
		}
		a.s.Devices = max(len(names), most)
		out = append(out, *a.s)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Last.Equal(out[j].Last) {
			return out[i].Last.After(out[j].Last)
		}
		return out[i].Org < out[j].Org
	})
	res.Orgs = out
	return res, nil
}

func dedupeKeys(keys []Key) []Key {
	seen := map[Key]bool{}
	out := keys[:0:0]
	for _, k := range keys {
		if k.Value == "" || seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, k)
	}
	return out
}

// keyHitLimit is how many incidents are read per indicator: enough to tell
// a common one (CommonEntityDevices incidents of one org) whatever the
// others hold.
func (s *Service) keyHitLimit() int { return max(100, 10*s.cfg.CommonEntityDevices) }

// sightingHitsSQL finds, per key ($1 kinds, $2 values: files, IPs, URLs),
// up to $4 incidents of any org but those of $5 (per key, joined by
// skipSep) that saw it since $3, the latest first: a range of
// hunting_incident_entities_sighting_recent_idx read backwards, the entity
// first, so that a key's older sightings, however many, are not read.
const sightingHitsSQL = `
SELECT k.kind, k.value, h.value, h.org, h.incident_id, h.first_seen, h.last_seen
FROM unnest($1::text[], $2::text[], $5::text[]) AS k(kind, value, skip)
CROSS JOIN LATERAL (
    SELECT e.value, e.org, e.incident_id, e.first_seen, e.last_seen FROM hunting_incident_entities e
    WHERE e.kind = k.kind AND e.value = k.value AND e.kind IN ('file', 'ip', 'url') AND e.last_seen >= $3
      AND e.org <> ALL (string_to_array(k.skip, E'\x1f'))
    ORDER BY e.last_seen DESC
    LIMIT $4) h`

// domainHitsSQL is sightingHitsSQL for domains ($1, $4 the orgs to
// skip), through hunting_incident_entities_url_host_recent_idx.
const domainHitsSQL = `
SELECT 'domain', k.value, h.value, h.org, h.incident_id, h.first_seen, h.last_seen
FROM unnest($1::text[], $4::text[]) AS k(value, skip)
CROSS JOIN LATERAL (
    SELECT e.value, e.org, e.incident_id, e.first_seen, e.last_seen FROM hunting_incident_entities e
    WHERE e.kind = 'url' AND ` + urlHostSQL + ` = k.value AND e.last_seen >= $2
      AND e.org <> ALL (string_to_array(k.skip, E'\x1f'))
    ORDER BY e.last_seen DESC
    LIMIT $3) h`

// skipSep joins the orgs a key's second read skips (an org id has no
// control characters).
const skipSep = "\x1f"

// keyHits reads the incidents holding each key since since, in one round
// trip: one statement per kind of key, each an index probe per key.
func (s *Service) keyHits(ctx context.Context, keys []Key, since time.Time) ([]hit, error) {
	var vk, vv, sha1s, domains, families []string
	for _, k := range keys {
		switch k.Kind {
		case KeyFile, KeyIP, KeyURL:
			vk, vv = append(vk, string(k.Kind)), append(vv, k.Value)
			if k.Kind == KeyFile && len(k.Value) == 40 {
				sha1s = append(sha1s, k.Value)
			}
		case KeyDomain:
			domains = append(domains, k.Value)
		case KeyFamily:
			families = append(families, k.Value)
		}
	}
	var hits []hit
	scan := func(kind KeyKind) func(pgx.Rows) error {
		return func(rows pgx.Rows) error {
			for rows.Next() {
				h := hit{key: Key{Kind: kind}}
				var k string
				if err := rows.Scan(&k, &h.key.Value, &h.stored, &h.org, &h.inc, &h.first, &h.last); err != nil {
					return err
				}
				if kind == "" {
					h.key.Kind = KeyKind(k)
				}
				hits = append(hits, h)
			}
			return rows.Err()
		}
	}
	limit := s.keyHitLimit()
	b := &pgx.Batch{}
	if len(vk) > 0 {
		b.Queue(sightingHitsSQL, vk, vv, since, limit, make([]string, len(vk))).Query(scan(""))
	}
	if len(sha1s) > 0 {
		// A file stored by its SHA-256 is found by its SHA-1 too: the alt
		// index starts with the org, so it is probed once per org.
		b.Queue(`
SELECT 'file', k.value, h.value, h.org, h.incident_id, h.first_seen, h.last_seen
FROM unnest($1::text[]) AS k(value) CROSS JOIN unnest($2::text[]) AS o(org)
CROSS JOIN LATERAL (
    SELECT e.value, e.org, e.incident_id, e.first_seen, e.last_seen FROM hunting_incident_entities e
    WHERE e.org = o.org AND e.kind = 'file' AND e.alt = k.value AND e.alt <> '' AND e.last_seen >= $3
    LIMIT $4) h`, sha1s, s.cfg.orgIDs(), since, limit).Query(scan(KeyFile))
	}
	if len(domains) > 0 {
		b.Queue(domainHitsSQL, domains, since, limit, make([]string, len(domains))).Query(scan(KeyDomain))
	}
	if len(families) > 0 {
		b.Queue(`
SELECT 'family', k.value, '', h.org, h.id, h.first_seen, h.last_seen
FROM unnest($1::text[]) AS k(value)
CROSS JOIN LATERAL (
    -- hunting_incidents_title_family_idx.
    SELECT i.org, i.id, coalesce(i.first_activity, i.created_at) AS first_seen, coalesce(i.last_activity, i.updated_at) AS last_seen
    FROM hunting_incidents i
    WHERE lower(i.title_family) = k.value AND i.title_family <> '' AND i.status <> 'merged'
      AND coalesce(i.last_activity, i.updated_at) >= $2
    LIMIT $3) h`, families, since, limit).Query(scan(KeyFamily))
	}
	if b.Len() == 0 {
		return nil, nil
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("hunting: look up %d indicators across orgs: %w", len(keys), err)
	}
	// A key read to the limit may have been filled by the orgs it is
	// common in: read it again without them, so that one org's volume
	// cannot hide the others' sightings.
	var again *pgx.Batch
	var ak, av, askip, dv, dskip []string
	for k, orgs := range saturated(hits, limit, s.cfg.CommonEntityDevices) {
		skip := strings.Join(orgs, skipSep)
		switch k.Kind {
		case KeyFile, KeyIP, KeyURL:
			ak, av, askip = append(ak, string(k.Kind)), append(av, k.Value), append(askip, skip)
		case KeyDomain:
			dv, dskip = append(dv, k.Value), append(dskip, skip)
		}
	}
	first := len(hits)
	if len(ak) > 0 || len(dv) > 0 {
		again = &pgx.Batch{}
		if len(ak) > 0 {
			again.Queue(sightingHitsSQL, ak, av, since, limit, askip).Query(scan(""))
		}
		if len(dv) > 0 {
			again.Queue(domainHitsSQL, dv, since, limit, dskip).Query(scan(KeyDomain))
		}
		if err := s.pool.SendBatch(ctx, again).Close(); err != nil {
			return nil, fmt.Errorf("hunting: look up %d indicators across orgs again: %w", len(ak)+len(dv), err)
		}
		hits = dedupeHits(hits, first)
	}
	for i := range hits {
		hits[i].first, hits[i].last = hits[i].first.UTC(), hits[i].last.UTC()
	}
	return hits, nil
}

// saturated returns the keys with limit hits or more (per kind of read)
// and, for each, the orgs holding n incidents or more of them (common
// there), when there are any.
func saturated(hits []hit, limit, n int) map[Key][]string {
	count := map[Key]int{}
	incs := map[Key]map[string]map[int64]bool{}
	for _, h := range hits {
		count[h.key]++
		if incs[h.key] == nil {
			incs[h.key] = map[string]map[int64]bool{}
		}
		if incs[h.key][h.org] == nil {
			incs[h.key][h.org] = map[int64]bool{}
		}
		incs[h.key][h.org][h.inc] = true
	}
	out := map[Key][]string{}
	for k, c := range count {
		if c < limit {
			continue
		}
		for org, is := range incs[k] {
			if len(is) >= n {
				out[k] = append(out[k], org)
			}
		}
		slices.Sort(out[k])
	}
	return out
}

// dedupeHits drops the hits from first on that repeat one before them
// (the same key, org, incident and value).
func dedupeHits(hits []hit, first int) []hit {
	type id struct {
		key        Key
		org, value string
		inc        int64
	}
	seen := map[id]bool{}
	out := hits[:0]
	for i, h := range hits {
		k := id{h.key, h.org, h.stored, h.inc}
		if i >= first && seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, h)
	}
	return out
}

// commonKeys reports, for the keys of hits, the orgs they are common in:
// held by CommonEntityDevices incidents or more there, or seen on as many
// devices (the prevalence the ingest guard reads).
func (s *Service) commonKeys(ctx context.Context, hits []hit) (map[Key]map[string]bool, error) {
	n := s.cfg.CommonEntityDevices
	common := map[Key]map[string]bool{}
	mark := func(k Key, org string) {
		if common[k] == nil {
			common[k] = map[string]bool{}
		}
		common[k][org] = true
	}
	type orgKey struct {
		org string
		key Key
	}
	incs := map[orgKey]map[int64]bool{}
	type probe struct{ org, kind, value string }
	probes := map[probe][]Key{}
	for _, h := range hits {
		ok := orgKey{h.org, h.key}
		if incs[ok] == nil {
			incs[ok] = map[int64]bool{}
		}
		incs[ok][h.inc] = true
		if len(incs[ok]) >= n {
			mark(h.key, h.org)
		}
		if h.key.Kind == KeyFile || h.key.Kind == KeyIP || h.key.Kind == KeyURL {
			p := probe{h.org, string(h.key.Kind), h.stored}
			if !slices.Contains(probes[p], h.key) {
				probes[p] = append(probes[p], h.key)
			}
		}
	}
	var orgs, kinds, values []string
	var owners [][]Key
	for p, ks := range probes {
		if allCommonIn(ks, p.org, common) {
			continue
		}
		orgs, kinds, values = append(orgs, p.org), append(kinds, p.kind), append(values, p.value)
		owners = append(owners, ks)
	}
	if len(orgs) == 0 {
		return common, nil
	}
	rows, err := s.pool.Query(ctx, `
SELECT x.i FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS x(org, kind, value, i)
CROSS JOIN LATERAL (
    -- The guard's own count: devices per entity, stopping at the threshold.
    SELECT count(*) AS n FROM (
        SELECT 1 FROM hunting_entity_devices d WHERE d.org = x.org AND d.kind = x.kind AND d.value = x.value LIMIT $4) y) c
WHERE c.n >= $4`, orgs, kinds, values, n)
	if err != nil {
		return nil, fmt.Errorf("hunting: how common %d indicators are: %w", len(orgs), err)
	}
	idx, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("hunting: how common %d indicators are: %w", len(orgs), err)
	}
	for _, i := range idx {
		for _, k := range owners[i-1] {
			mark(k, orgs[i-1])
		}
	}
	return common, nil
}

func allCommonIn(ks []Key, org string, common map[Key]map[string]bool) bool {
	for _, k := range ks {
		if !common[k][org] {
			return false
		}
	}
	return true
}

// incidentDevices is what an incident names of its devices.
type incidentDevices struct {
	names []string
	count int
}

// incidentRefs reads the incidents ids (any org: for experts' sightings).
func (s *Service) incidentRefs(ctx context.Context, ids []int64) (map[int64]IncidentRef, map[int64]incidentDevices, error) {
	rows, err := s.pool.Query(ctx, `
SELECT id, title, score, severity, status, device_names, device_count FROM hunting_incidents WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("hunting: read %d incidents: %w", len(ids), err)
	}
	defer rows.Close()
	refs, devs := map[int64]IncidentRef{}, map[int64]incidentDevices{}
	for rows.Next() {
		var r IncidentRef
		var d incidentDevices
		if err := rows.Scan(&r.ID, &r.Title, &r.Score, &r.Severity, &r.Status, &d.names, &d.count); err != nil {
			return nil, nil, fmt.Errorf("hunting: read incidents: %w", err)
		}
		refs[r.ID], devs[r.ID] = r, d
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("hunting: read incidents: %w", err)
	}
	return refs, devs, nil
}

// Known is what hunting knows of an indicator in one org.
type Known struct {
	// Incidents holding it, most recently active first (at most
	// maxKnownListed); IncidentCount counts them all.
	Incidents     []IncidentRef `json:"incidents"`
	IncidentCount int           `json:"incident_count"`
	// Devices are the names of those incidents' devices (at most
	// maxKnownListed); DeviceCount counts them.
	Devices     []string `json:"devices"`
	DeviceCount int      `json:"device_count"`
	// Alerts are the newest alerts of those incidents; AlertCount counts
	// them all.
	Alerts     []AlertRef `json:"alerts"`
	AlertCount int        `json:"alert_count"`
	// First and Last bound when it was seen.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// AlertRef is a short reference to an alert.
type AlertRef struct {
	ID       string   `json:"id"`
	Title    string   `json:"title"`
	Severity Severity `json:"severity"`
	Device   string   `json:"device"`
}

// IsZero reports whether nothing is known.
func (k *Known) IsZero() bool { return k == nil || k.IncidentCount == 0 }

// incidentAlertCountSQL counts the alerts of incidents $1 of org $2, and
// incidentAlertListSQL lists the latest $3 of them: through
// hunting_alerts_incident_idx, incident by incident. With the org beside
// "incident_id = ANY($1)", statistics taken while the org was small could
// plan either as a scan of every alert of the org (the primary key starts
// with it); the org is checked on the rows found instead, and OFFSET 0 and
// LIMIT keep each lookup from being flattened into such a join.
const (
	incidentAlertCountSQL = `
SELECT count(*) FROM (SELECT DISTINCT unnest($1::bigint[])) AS want(inc)
CROSS JOIN LATERAL (SELECT a.org FROM hunting_alerts a WHERE a.incident_id = want.inc OFFSET 0) a
WHERE a.org = $2`
	incidentAlertListSQL = `
SELECT a.id, a.title, a.severity, a.device_name FROM (SELECT DISTINCT unnest($1::bigint[])) AS want(inc)
CROSS JOIN LATERAL (
    SELECT a.org, a.id, a.title, a.severity, a.device_name, a.first_activity FROM hunting_alerts a
    WHERE a.incident_id = want.inc ORDER BY a.first_activity DESC LIMIT $3) a
WHERE a.org = $2
ORDER BY a.first_activity DESC LIMIT $3`
)

// KnownOf returns what org's incidents say of a case subject of kind file,
// ip, url (a URL or a domain) or actor (a threat family) since since: the
// incidents holding it, their devices and alerts. Nothing known is a zero
// Known, not an error.
func (s *Service) KnownOf(ctx context.Context, org, kind, id string, since time.Time) (*Known, error) {
	keys := keysOf(kind, id)
	if len(keys) == 0 {
		return &Known{}, nil
	}
	// The most specific key: a URL rather than its domain.
	k := keys[0]
	var q string
	args := []any{org, k.Value, since, 200}
	switch k.Kind {
	case KeyFile:
		q = `SELECT e.incident_id, e.first_seen, e.last_seen FROM hunting_incident_entities e
WHERE e.org = $1 AND e.kind = 'file' AND e.kind IN ('device', 'user', 'file', 'ip', 'url')
  AND (e.value = $2 OR (e.alt = $2 AND e.alt <> '')) AND e.last_seen >= $3 LIMIT $4`
	case KeyIP, KeyURL:
		args = append(args, string(k.Kind))
		q = `SELECT e.incident_id, e.first_seen, e.last_seen FROM hunting_incident_entities e
WHERE e.org = $1 AND e.kind = $5 AND e.value = $2 AND e.kind IN ('device', 'user', 'file', 'ip', 'url') AND e.last_seen >= $3 LIMIT $4`
	case KeyDomain:
		q = `SELECT e.incident_id, e.first_seen, e.last_seen FROM hunting_incident_entities e
WHERE e.kind = 'url' AND ` + urlHostSQL + ` = $2 AND e.org = $1 AND e.last_seen >= $3 LIMIT $4`
	case KeyFamily:
		q = `SELECT i.id, coalesce(i.first_activity, i.created_at), coalesce(i.last_activity, i.updated_at) FROM hunting_incidents i
WHERE lower(i.title_family) = $2 AND i.title_family <> '' AND i.org = $1 AND i.status <> 'merged'
  AND coalesce(i.last_activity, i.updated_at) >= $3 LIMIT $4`
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("hunting: what org %s knows of %s: %w", org, k, err)
	}
	last := map[int64]time.Time{}
	out := &Known{}
	for rows.Next() {
		var id int64
		var f, l time.Time
		if err := rows.Scan(&id, &f, &l); err != nil {
			rows.Close()
			return nil, fmt.Errorf("hunting: what org %s knows of %s: %w", org, k, err)
		}
		f, l = f.UTC(), l.UTC()
		if out.First.IsZero() || f.Before(out.First) {
			out.First = f
		}
		out.Last = maxTime(out.Last, l)
		last[id] = maxTime(last[id], l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hunting: what org %s knows of %s: %w", org, k, err)
	}
	if len(last) == 0 {
		return out, nil
	}
	ids := make([]int64, 0, len(last))
	for id := range last {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if !last[ids[i]].Equal(last[ids[j]]) {
			return last[ids[i]].After(last[ids[j]])
		}
		return ids[i] > ids[j]
	})
	out.IncidentCount = len(ids)
	refs, devs, err := s.incidentRefs(ctx, ids)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, id := range ids {
		if r, ok := refs[id]; ok && len(out.Incidents) < maxKnownListed {
			out.Incidents = append(out.Incidents, r)
		}
		for _, d := range devs[id].names {
			if !names[d] {
				names[d] = true
				if len(out.Devices) < maxKnownListed {
					out.Devices = append(out.Devices, d)
				}
			}
		}
		out.DeviceCount = max(out.DeviceCount, devs[id].count)
	}
	out.DeviceCount = max(out.DeviceCount, len(names))
	b := &pgx.Batch{}
	b.Queue(incidentAlertCountSQL, ids, org).QueryRow(func(r pgx.Row) error {
		return r.Scan(&out.AlertCount)
	})
	b.Queue(incidentAlertListSQL, ids, org, maxKnownListed/2).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var a AlertRef
			if err := rows.Scan(&a.ID, &a.Title, &a.Severity, &a.Device); err != nil {
				return err
			}
			out.Alerts = append(out.Alerts, a)
		}
		return rows.Err()
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("hunting: the alerts org %s has of %s: %w", org, k, err)
	}
	return out, nil
}

// IncidentActivity is an incident of any org, for experts: its org, and
// when its alerts were active.
type IncidentActivity struct {
	IncidentRef
	Org   string    `json:"org"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// IncidentsByID returns the incidents ids of any org (experts tag and list
// campaigns across orgs); ids hunting does not know are left out.
func (s *Service) IncidentsByID(ctx context.Context, ids []int64) ([]IncidentActivity, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `
SELECT id, org, title, score, severity, status, coalesce(first_activity, created_at), coalesce(last_activity, updated_at)
FROM hunting_incidents WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("hunting: read %d incidents: %w", len(ids), err)
	}
	defer rows.Close()
	var out []IncidentActivity
	for rows.Next() {
		var a IncidentActivity
		if err := rows.Scan(&a.ID, &a.Org, &a.Title, &a.Score, &a.Severity, &a.Status, &a.First, &a.Last); err != nil {
			return nil, fmt.Errorf("hunting: read incidents: %w", err)
		}
		a.First, a.Last = a.First.UTC(), a.Last.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hunting: read incidents: %w", err)
	}
	return out, nil
}

// MergedFrom returns org's incidents merged into id, directly or through
// others (a chain of merges), so that what was said of them (a campaign
// tag) follows to the incident their activity now is in.
func (s *Service) MergedFrom(ctx context.Context, org string, id int64) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `
WITH RECURSIVE m(id, depth) AS (
    SELECT i.id, 1 FROM hunting_incidents i WHERE i.org = $1 AND i.merged_into = $2
    UNION
    SELECT i.id, m.depth + 1 FROM hunting_incidents i JOIN m ON i.merged_into = m.id WHERE i.org = $1 AND m.depth < 64)
SELECT DISTINCT id FROM m`, org, id)
	if err != nil {
		return nil, fmt.Errorf("hunting: incidents merged into %d: %w", id, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("hunting: incidents merged into %d: %w", id, err)
	}
	return ids, nil
}

// Survivor returns the incident org's incident id's activity is in now: id
// itself, or the end of the chain of merges it was absorbed by.
func (s *Service) Survivor(ctx context.Context, org string, id int64) (int64, error) {
	var out int64
	err := s.pool.QueryRow(ctx, `
WITH RECURSIVE m(id, next, depth) AS (
    SELECT i.id, i.merged_into, 1 FROM hunting_incidents i WHERE i.org = $1 AND i.id = $2
    UNION ALL
    SELECT i.id, i.merged_into, m.depth + 1 FROM hunting_incidents i JOIN m ON i.id = m.next WHERE i.org = $1 AND m.depth < 64)
SELECT id FROM m ORDER BY depth DESC LIMIT 1`, org, id).Scan(&out)
	if errors.Is(err, pgx.ErrNoRows) {
		return id, nil
	}
	if err != nil {
		return 0, fmt.Errorf("hunting: where incident %d is now: %w", id, err)
	}
	return out, nil
}

// orgIDs are the configured orgs' ids.
func (c *Config) orgIDs() []string {
	ids := make([]string, len(c.Orgs))
	for i, o := range c.Orgs {
		ids[i] = o.ID
	}
	return ids
}

// AlertIDs returns the ids of the alerts of incidents (any org), at most
// limit: the cases about those alerts belong to the incidents' sightings.
func (s *Service) AlertIDs(ctx context.Context, incidents []int64, limit int) ([]string, error) {
	if len(incidents) == 0 || limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id FROM hunting_alerts WHERE incident_id = ANY($1) LIMIT $2`, incidents, limit)
	if err != nil {
		return nil, fmt.Errorf("hunting: the alerts of %d incidents: %w", len(incidents), err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("hunting: the alerts of %d incidents: %w", len(incidents), err)
	}
	return ids, nil
}
