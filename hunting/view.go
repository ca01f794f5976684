package hunting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Card limits: the card lists at most CardEntities values per kind and
// CardTimeline timeline entries; FullScope lists up to FullScopeLimit.
const (
	CardEntities   = 10
	CardTimeline   = 10
	FullScopeLimit = 5000
)

// ScopeEntity is one entity in an incident's scope.
type ScopeEntity struct {
	Value   string `json:"value"`
	Display string `json:"display"`
	// Alt is a file's SHA-1 when Value is its SHA-256.
	Alt string `json:"alt,omitempty"`
	// Alerts is set for processes and registry keys: how many alerts show it.
	Alerts    int       `json:"alerts,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// ScopeGroup is the entities of one kind: the total count and the values
// (all of them in FullScope, the first CardEntities on the card).
type ScopeGroup struct {
	Kind   EntityKind    `json:"kind"`
	Count  int           `json:"count"`
	Values []ScopeEntity `json:"values"`
}

// Scope is the scope of compromise.
type Scope struct {
	Devices   ScopeGroup `json:"devices"`
	Users     ScopeGroup `json:"users"`
	Files     ScopeGroup `json:"files"`
	IPs       ScopeGroup `json:"ips"`
	URLs      ScopeGroup `json:"urls"`
	Processes ScopeGroup `json:"processes"`
	Registry  ScopeGroup `json:"registry"`
}

func (sc *Scope) group(k EntityKind) *ScopeGroup {
	switch k {
	case EntityDevice:
		return &sc.Devices
	case EntityUser:
		return &sc.Users
	case EntityFile:
		return &sc.Files
	case EntityIP:
		return &sc.IPs
	case EntityURL:
		return &sc.URLs
	case EntityProcess:
		return &sc.Processes
	case EntityRegistry:
		return &sc.Registry
	}
	return nil
}

// TimelineEntry is one alert on the incident's timeline.
type TimelineEntry struct {
	Time     time.Time `json:"time"`
	AlertID  string    `json:"alert_id"`
	Title    string    `json:"title"`
	Severity Severity  `json:"severity"`
	Tactic   *Tactic   `json:"tactic,omitempty"`
	Device   string    `json:"device,omitempty"`
}

// IncidentView is everything the notification card shows.
type IncidentView struct {
	ID     int64  `json:"id"`
	Org    string `json:"org"`
	Status string `json:"status"` // open, closed, merged
	// MergedInto is set when Status is merged: show that incident instead.
	MergedInto int64    `json:"merged_into,omitempty"`
	Title      string   `json:"title"`
	Summary    string   `json:"summary"`
	Severity   Severity `json:"severity"`
	Score      int      `json:"score"`
	// Reasons is the score's breakdown ("why you are seeing this").
	Reasons []Reason `json:"reasons"`
	// FromExperts: the expert hunting service raised an alert of it;
	// Priority is then "top".
	FromExperts bool   `json:"from_experts"`
	Priority    string `json:"priority"`
	AlertCount  int    `json:"alert_count"`
	// Scope lists the first CardEntities values of each kind with full counts.
	Scope Scope `json:"scope"`
	// Timeline is the first CardTimeline alerts in time order, of TimelineTotal.
	Timeline      []TimelineEntry `json:"timeline"`
	TimelineTotal int             `json:"timeline_total"`
	Tactics       []Tactic        `json:"tactics"`
	Techniques    []string        `json:"techniques"`
	Actions       []string        `json:"actions"`
	// Changes is what the latest update announced.
	Changes        []Change   `json:"changes,omitempty"`
	FirstActivity  time.Time  `json:"first_activity"`
	LastActivity   time.Time  `json:"last_activity"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	PostedAt       *time.Time `json:"posted_at,omitempty"`
	AcknowledgedBy string     `json:"acknowledged_by,omitempty"`
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
	// WebURLs links the source alerts in the Microsoft portal (up to 3).
	WebURLs []string `json:"web_urls,omitempty"`
	// Classification, ResolvedBy ("upstream" when every alert was resolved
	// in the source), ResolvedAt and ResolveComment once resolved.
	Classification Classification `json:"classification,omitempty"`
	ResolvedBy     string         `json:"resolved_by,omitempty"`
	ResolvedAt     *time.Time     `json:"resolved_at,omitempty"`
	ResolveComment string         `json:"resolve_comment,omitempty"`
	// Follows is the closed incident this one follows.
	Follows int64 `json:"follows,omitempty"`
}

// Incident returns the card view of an incident of org.
func (s *Service) Incident(ctx context.Context, org string, id int64) (*IncidentView, error) {
	v, err := s.view(ctx, org, id, CardEntities)
	if err != nil {
		return nil, err
	}
	if err := s.Shown(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// FullScope returns the incident with every entity (up to FullScopeLimit
// per kind), for "Show full scope", which posts it in the card's thread.
func (s *Service) FullScope(ctx context.Context, org string, id int64) (*Scope, error) {
	v, err := s.view(ctx, org, id, FullScopeLimit)
	if err != nil {
		return nil, err
	}
	if v.Status == "merged" && v.MergedInto != 0 {
		// Its alerts and entities moved: the scope is the other one's.
		return nil, notOpen(id, v.Status, &v.MergedInto, nil, "")
	}
	if err := s.Shown(ctx); err != nil {
		return nil, err
	}
	return &v.Scope, nil
}

// Shown waits, before what a view read is shown to a person, for the disk:
// every commit it could have read is then flushed (durable), so that
// nothing it shows can be taken back by a crash of the database after an
// ingest that committed without waiting. An error means the view must not
// be shown. Views outside hunting that read its tables (insight, reports)
// call it after their reads.
func (s *Service) Shown(ctx context.Context) error {
	if err := s.durable(ctx); err != nil {
		return fmt.Errorf("hunting: before showing what was read: %w", err)
	}
	return nil
}

func (s *Service) view(ctx context.Context, org string, id int64, perKind int) (*IncidentView, error) {
	v := &IncidentView{ID: id, Org: org}
	var brk, chg []byte
	var merged *int64
	var tactics []string
	var fa, la *time.Time
	err := s.pool.QueryRow(ctx, `
SELECT status, merged_into, title, summary, severity, score, breakdown, expert, alert_count, tactics,
    first_activity, last_activity, created_at, updated_at, posted_at, coalesce(acked_by, ''), acked_at, last_changes,
    classification, coalesce(resolved_by, ''), resolved_at, resolve_comment, coalesce(follows, 0)
FROM hunting_incidents WHERE org = $1 AND id = $2`, org, id).Scan(&v.Status, &merged, &v.Title, &v.Summary, &v.Severity,
		&v.Score, &brk, &v.FromExperts, &v.AlertCount, &tactics, &fa, &la, &v.CreatedAt, &v.UpdatedAt, &v.PostedAt,
		&v.AcknowledgedBy, &v.AcknowledgedAt, &chg, &v.Classification, &v.ResolvedBy, &v.ResolvedAt, &v.ResolveComment, &v.Follows)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("incident %d of org %s: %w", id, org, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("hunting: read incident %d: %w", id, err)
	}
	if merged != nil {
		v.MergedInto = *merged
	}
	if fa != nil {
		v.FirstActivity = *fa
	}
	if la != nil {
		v.LastActivity = *la
	}
	if err := json.Unmarshal(brk, &v.Reasons); err != nil {
		return nil, fmt.Errorf("hunting: decode breakdown of incident %d: %w", id, err)
	}
	if len(chg) > 0 {
		if err := json.Unmarshal(chg, &v.Changes); err != nil {
			return nil, fmt.Errorf("hunting: decode changes of incident %d: %w", id, err)
		}
	}
	v.Priority = PriorityNormal
	if v.FromExperts {
		v.Priority = PriorityTop
	}
	for _, t := range tactics {
		if tt, ok := TacticByID(t); ok {
			v.Tactics = append(v.Tactics, tt)
		}
	}
	sort.Slice(v.Tactics, func(i, j int) bool { return v.Tactics[i].Order < v.Tactics[j].Order })

	b := &pgx.Batch{}
	b.Queue(`SELECT kind, count(*) FROM hunting_incident_entities WHERE incident_id = $1 GROUP BY kind`, id)
	b.Queue(`SELECT kind, value, display, alt, first_seen, last_seen FROM (
    SELECT *, row_number() OVER (PARTITION BY kind ORDER BY first_seen, value) AS rn
    FROM hunting_incident_entities WHERE incident_id = $1) e
WHERE rn <= $2 ORDER BY kind, rn`, id, perKind)
	b.Queue(`SELECT first_activity, id, title, severity, tactic, device_name, web_url FROM hunting_alerts
WHERE incident_id = $1 ORDER BY first_activity, id LIMIT $2`, id, CardTimeline)
	b.Queue(`SELECT coalesce(array_agg(DISTINCT t ORDER BY t), '{}') FROM hunting_alerts, unnest(techniques) t WHERE incident_id = $1`, id)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("hunting: count scope of incident %d: %w", id, err)
	}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("hunting: count scope: %w", err)
		}
		if g := v.Scope.group(EntityKind(k)); g != nil {
			g.Kind, g.Count = EntityKind(k), n
		}
	}
	rows.Close()
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("hunting: read scope of incident %d: %w", id, err)
	}
	for rows.Next() {
		var k string
		var e ScopeEntity
		if err := rows.Scan(&k, &e.Value, &e.Display, &e.Alt, &e.FirstSeen, &e.LastSeen); err != nil {
			rows.Close()
			return nil, fmt.Errorf("hunting: read scope: %w", err)
		}
		if g := v.Scope.group(EntityKind(k)); g != nil {
			g.Values = append(g.Values, e)
		}
	}
	rows.Close()
	if perKind > CardEntities {
		// Full scope: processes, command lines and registry keys live in the
		// alerts' evidence.
		if err := s.evidenceScope(ctx, id, perKind, &v.Scope); err != nil {
			return nil, err
		}
	}
	for _, k := range []EntityKind{EntityDevice, EntityUser, EntityFile, EntityIP, EntityURL, EntityProcess, EntityRegistry} {
		g := v.Scope.group(k)
		g.Kind = k
		if g.Values == nil {
			g.Values = []ScopeEntity{}
		}
	}
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("hunting: read timeline of incident %d: %w", id, err)
	}
	for rows.Next() {
		var e TimelineEntry
		var tac, url string
		if err := rows.Scan(&e.Time, &e.AlertID, &e.Title, &e.Severity, &tac, &e.Device, &url); err != nil {
			rows.Close()
			return nil, fmt.Errorf("hunting: read timeline: %w", err)
		}
		if t, ok := TacticByID(tac); ok {
			e.Tactic = &t
		}
		if url != "" && len(v.WebURLs) < 3 && !contains(v.WebURLs, url) {
			v.WebURLs = append(v.WebURLs, url)
		}
		v.Timeline = append(v.Timeline, e)
	}
	rows.Close()
	if err := br.QueryRow().Scan(&v.Techniques); err != nil {
		return nil, fmt.Errorf("hunting: read techniques of incident %d: %w", id, err)
	}
	v.TimelineTotal = v.AlertCount
	ids := make([]string, len(v.Tactics))
	for i, t := range v.Tactics {
		ids[i] = t.ID
	}
	v.Actions = recommend(ids, v.Scope.Devices.Count, v.FromExperts, v.Severity)
	return v, nil
}

func (s *Service) evidenceScope(ctx context.Context, id int64, perKind int, sc *Scope) error {
	rows, err := s.pool.Query(ctx, `
SELECT e->>'k', e->>'v', coalesce(max(e->>'d'), e->>'v'), count(*), min(a.first_activity), max(a.first_activity)
FROM hunting_alerts a, jsonb_array_elements(a.evidence) e
WHERE a.incident_id = $1 AND e->>'k' IN ('process', 'registry')
GROUP BY 1, 2 ORDER BY 5, 2 LIMIT $2`, id, 2*perKind)
	if err != nil {
		return fmt.Errorf("hunting: read evidence of incident %d: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var e ScopeEntity
		if err := rows.Scan(&k, &e.Value, &e.Display, &e.Alerts, &e.FirstSeen, &e.LastSeen); err != nil {
			return fmt.Errorf("hunting: read evidence: %w", err)
		}
		if g := sc.group(EntityKind(k)); g != nil {
			g.Count++
			if len(g.Values) < perKind {
				g.Values = append(g.Values, e)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("hunting: read evidence of incident %d: %w", id, err)
	}
	return nil
}

// IncidentRef is a short reference to an incident.
type IncidentRef struct {
	ID       int64    `json:"id"`
	Title    string   `json:"title"`
	Score    int      `json:"score"`
	Severity Severity `json:"severity"`
	Status   string   `json:"status"`
	// MergedInto is the incident a merged one went into.
	MergedInto int64 `json:"merged_into,omitempty"`
}

// IncidentSummary returns an incident's title, score and severity.
func (s *Service) IncidentSummary(ctx context.Context, org string, id int64) (*IncidentRef, error) {
	r := &IncidentRef{ID: id}
	err := s.pool.QueryRow(ctx, `SELECT title, score, severity, status, coalesce(merged_into, 0) FROM hunting_incidents WHERE org = $1 AND id = $2`,
		org, id).Scan(&r.Title, &r.Score, &r.Severity, &r.Status, &r.MergedInto)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("incident %d of org %s: %w", id, org, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("hunting: look up incident %d: %w", id, err)
	}
	return r, nil
}

// AlertInfo is what a case subject shows about an alert.
type AlertInfo struct {
	ID              string    `json:"id"`
	Source          Source    `json:"source"`
	Title           string    `json:"title"`
	Severity        Severity  `json:"severity"`
	Status          string    `json:"status"`
	Category        string    `json:"category"`
	Tactic          *Tactic   `json:"tactic,omitempty"`
	DetectionSource string    `json:"detection_source"`
	FromExperts     bool      `json:"from_experts"`
	Host            string    `json:"host"`
	DeviceID        string    `json:"device_id"`
	IncidentID      int64     `json:"incident_id"`
	FirstActivity   time.Time `json:"first_activity"`
	WebURL          string    `json:"web_url,omitempty"`
}

// Alert looks up an alert of org by its source id.
func (s *Service) Alert(ctx context.Context, org, id string) (*AlertInfo, error) {
	a := &AlertInfo{}
	var tac string
	err := s.pool.QueryRow(ctx, `
SELECT id, source, title, severity, status, category, tactic, detection_source, expert, device_name, device_id,
    incident_id, first_activity, web_url
FROM hunting_alerts WHERE org = $1 AND id = $2`, org, strings.TrimSpace(id)).Scan(&a.ID, &a.Source, &a.Title, &a.Severity,
		&a.Status, &a.Category, &tac, &a.DetectionSource, &a.FromExperts, &a.Host, &a.DeviceID, &a.IncidentID, &a.FirstActivity, &a.WebURL)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("alert %q of org %s: %w", clip(id, maxIDLen), org, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("hunting: look up alert: %w", err)
	}
	if t, ok := TacticByID(tac); ok {
		a.Tactic = &t
	}
	if a.Host == "" {
		a.Host = a.DeviceID
	}
	if err := s.Shown(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// EntityInfo is what a case subject shows about a device or a file.
type EntityInfo struct {
	Kind    EntityKind `json:"kind"`
	Value   string     `json:"value"`
	Display string     `json:"display"`
	// Alt is a file's SHA-1 when Value is its SHA-256.
	Alt string `json:"alt,omitempty"`
	// Devices is on how many devices a file was seen (prevalence). Once a
	// file is common (Config.CommonEntityDevices) sightings are sampled, so
	// the figure is then a lower bound.
	Devices   int           `json:"devices,omitempty"`
	FirstSeen time.Time     `json:"first_seen"`
	LastSeen  time.Time     `json:"last_seen"`
	Incidents []IncidentRef `json:"incidents"`
}

var hashRE = regexp.MustCompile(`^[0-9a-fA-F]{40}$|^[0-9a-fA-F]{64}$`)

// Device looks up a device of org by its Defender device id or its name
// (case-insensitive).
func (s *Service) Device(ctx context.Context, org, idOrName string) (*EntityInfo, error) {
	q := strings.ToLower(strings.TrimSpace(clip(idOrName, maxShortLen)))
	return s.entity(ctx, org, EntityDevice, `(ie.value = $3 OR ie.value = 'name:' || $3 OR lower(ie.display) = $3)`, q, "device "+q)
}

// File looks up a file of org by SHA-1 or SHA-256.
func (s *Service) File(ctx context.Context, org, hash string) (*EntityInfo, error) {
	h := strings.ToLower(strings.TrimSpace(hash))
	if !hashRE.MatchString(h) {
		return nil, fmt.Errorf("file %q: give a SHA-1 (40 hex) or SHA-256 (64 hex): %w", clip(hash, 80), ErrNotFound)
	}
	info, err := s.entity(ctx, org, EntityFile, `(ie.value = $3 OR ie.alt = $3)`, h, "file "+h)
	if err != nil {
		return nil, err
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM hunting_entity_devices WHERE org = $1 AND kind = 'file' AND value = $2`,
		org, info.Value).Scan(&info.Devices); err != nil {
		return nil, fmt.Errorf("hunting: file prevalence: %w", err)
	}
	return info, nil
}

func (s *Service) entity(ctx context.Context, org string, kind EntityKind, match, arg, what string) (*EntityInfo, error) {
	rows, err := s.pool.Query(ctx, `
SELECT ie.value, ie.display, ie.alt, ie.first_seen, ie.last_seen, i.id, i.title, i.score, i.severity, i.status
FROM hunting_incident_entities ie JOIN hunting_incidents i ON i.id = ie.incident_id
WHERE ie.org = $1 AND ie.kind = $2 AND ie.kind IN ('device', 'user', 'file', 'ip', 'url') AND `+match+`
ORDER BY ie.last_seen DESC LIMIT 50`, org, string(kind), arg)
	if err != nil {
		return nil, fmt.Errorf("hunting: look up %s: %w", what, err)
	}
	defer rows.Close()
	var info *EntityInfo
	for rows.Next() {
		var e ScopeEntity
		var r IncidentRef
		if err := rows.Scan(&e.Value, &e.Display, &e.Alt, &e.FirstSeen, &e.LastSeen, &r.ID, &r.Title, &r.Score, &r.Severity, &r.Status); err != nil {
			return nil, fmt.Errorf("hunting: look up %s: %w", what, err)
		}
		if info == nil {
			info = &EntityInfo{Kind: kind, Value: e.Value, Display: e.Display, Alt: e.Alt, FirstSeen: e.FirstSeen, LastSeen: e.LastSeen}
		}
		if e.Value != info.Value {
			continue
		}
		info.FirstSeen = minTime(info.FirstSeen, e.FirstSeen)
		info.LastSeen = maxTime(info.LastSeen, e.LastSeen)
		info.Incidents = append(info.Incidents, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hunting: look up %s: %w", what, err)
	}
	if info == nil {
		return nil, fmt.Errorf("%s of org %s: %w", what, org, ErrNotFound)
	}
	if err := s.Shown(ctx); err != nil {
		return nil, err
	}
	return info, nil
}
