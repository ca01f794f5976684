package insight

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
)

// ErrNotFound is returned (wrapped) for a campaign, case or incident that
// does not exist.
var ErrNotFound = errors.New("insight: not found")

// Refusal is a request refused for what it asks (a bad campaign name, a
// merged incident); Msg is one sentence to show as it is.
type Refusal struct{ Msg string }

func (r *Refusal) Error() string { return r.Msg }

// Service answers experts' cross-customer questions and keeps the
// campaigns. It is safe for concurrent use.
type Service struct {
	pool  *pgxpool.Pool
	cfg   Config
	hunt  *hunting.Service
	cases *casework.Service
	log   *slog.Logger
}

// New returns a Service reading hunting's and casework's stores through
// hunt and cases. cfg is validated after its defaults are filled in.
func New(pool *pgxpool.Pool, cfg Config, hunt *hunting.Service, cases *casework.Service, log *slog.Logger) (*Service, error) {
	if pool == nil || hunt == nil || cases == nil {
		return nil, errors.New("insight: New needs a database pool, hunting and casework")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("insight config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{pool: pool, cfg: cfg, hunt: hunt, cases: cases, log: log.With("component", "insight")}, nil
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

func (s *Service) since() time.Time { return s.cfg.Now().Add(-s.cfg.Window) }

// Subject is a case subject, its kind as casework names it (alert, device,
// file, incident, ip, url, actor).
type Subject struct {
	Kind string
	ID   string
}

// Sighting is one other org where a subject's indicators were seen.
type Sighting struct {
	Org string
	// Keys are the indicators seen there.
	Keys []hunting.Key
	// Incidents are the org's incidents holding them (the most recent few;
	// IncidentCount counts them all), and Devices the devices of those
	// incidents.
	Incidents     []hunting.IncidentRef
	IncidentCount int
	Devices       int
	// Cases are the org's cases about the indicators or those incidents
	// (the most recent few; CaseCount counts them all).
	Cases     []casework.CaseRef
	CaseCount int
	// First and Last bound when it was seen there.
	First, Last time.Time
}

// Sightings is the answer of Service.Sightings.
type Sightings struct {
	// Orgs are the other orgs, the last sighting first.
	Orgs []Sighting
	// Keys are the indicators looked up; Common those left out for being
	// common.
	Keys   []hunting.Key
	Common []hunting.Key
}

// Limits of a sighting.
const (
	maxSightingCases = 3
	maxCaseLookups   = 100
	maxAlertLookups  = 200
)

// Sightings returns where else (in orgs other than org) the indicators of
// a case subject of org were seen within the window: in incidents, and in
// cases about the same indicators, incidents or their alerts. For experts
// only. What it shows is on disk (hunting commits its intake without
// waiting for the disk; see hunting.Service.Shown).
func (s *Service) Sightings(ctx context.Context, org string, sub Subject) (Sightings, error) {
	out, err := s.sightings(ctx, org, sub)
	if err != nil {
		return out, err
	}
	return out, s.hunt.Shown(ctx)
}

func (s *Service) sightings(ctx context.Context, org string, sub Subject) (Sightings, error) {
	var out Sightings
	since := s.since()
	keys, err := s.hunt.SubjectKeys(ctx, org, sub.Kind, sub.ID, since)
	if err != nil {
		return out, err
	}
	out.Keys = keys
	if len(keys) == 0 {
		return out, nil
	}
	hs, err := s.hunt.Sightings(ctx, keys, since, org)
	if err != nil {
		return out, err
	}
	out.Common = hs.Common
	common := map[hunting.Key]bool{}
	for _, k := range hs.Common {
		common[k] = true
	}
	by := map[string]*Sighting{}
	var incs []int64
	// incOrg is each incident's org: a case about an incident or one of
	// its alerts is a sighting only in that org (another org's case naming
	// the same number is about an incident of its own).
	incOrg := map[string]string{}
	for _, o := range hs.Orgs {
		by[o.Org] = &Sighting{Org: o.Org, Keys: o.Keys, Incidents: o.Incidents, IncidentCount: o.IncidentCount, Devices: o.Devices,
			First: o.First, Last: o.Last}
		for _, r := range o.Incidents {
			incs = append(incs, r.ID)
			incOrg[strconv.FormatInt(r.ID, 10)] = o.Org
		}
	}
	// The cases of other orgs about the same indicators, incidents or the
	// incidents' alerts.
	var subjects []casework.Subject
	for _, k := range keys {
		if common[k] {
			continue
		}
		switch k.Kind {
		case hunting.KeyFile, hunting.KeyIP, hunting.KeyURL:
			subjects = append(subjects, casework.Subject{Kind: casework.SubjectKind(k.Kind), ID: k.Value})
		case hunting.KeyDomain:
			subjects = append(subjects, casework.Subject{Kind: casework.SubjectURL, ID: k.Value})
		case hunting.KeyFamily:
			subjects = append(subjects, casework.Subject{Kind: casework.SubjectActor, ID: k.Value})
		}
	}
	for _, id := range incs {
		subjects = append(subjects, casework.Subject{Kind: casework.SubjectIncident, ID: strconv.FormatInt(id, 10)})
	}
	alerts, err := s.hunt.AlertIDs(ctx, incs, maxAlertLookups)
	if err != nil {
		return out, err
	}
	for _, a := range alerts {
		subjects = append(subjects, casework.Subject{Kind: casework.SubjectAlert, ID: a})
	}
	cs, err := s.cases.CasesAbout(ctx, casework.AllOrgs(), subjects, since, maxCaseLookups)
	if err != nil {
		return out, err
	}
	for _, c := range cs {
		if c.Org == org {
			continue
		}
		switch c.Subject.Kind {
		case casework.SubjectIncident:
			if incOrg[strings.TrimPrefix(c.Subject.ID, "#")] != c.Org {
				continue
			}
		case casework.SubjectAlert:
			if by[c.Org] == nil || by[c.Org].IncidentCount == 0 {
				continue
			}
		}
		x := by[c.Org]
		if x == nil {
			x = &Sighting{Org: c.Org, First: c.CreatedAt, Last: c.UpdatedAt}
			by[c.Org] = x
		}
		x.CaseCount++
		if len(x.Cases) < maxSightingCases {
			x.Cases = append(x.Cases, c)
		}
		if c.CreatedAt.Before(x.First) {
			x.First = c.CreatedAt
		}
		if c.UpdatedAt.After(x.Last) {
			x.Last = c.UpdatedAt
		}
	}
	for _, x := range by {
		out.Orgs = append(out.Orgs, *x)
	}
	sort.Slice(out.Orgs, func(i, j int) bool {
		a, b := out.Orgs[i], out.Orgs[j]
		if !a.Last.Equal(b.Last) {
			return a.Last.After(b.Last)
		}
		return a.Org < b.Org
	})
	return out, nil
}

// Lookup returns where an indicator (a case subject of kind file, ip, url
// or actor) was seen in every org within the window: an expert's own
// question, with no case of an org behind it.
func (s *Service) Lookup(ctx context.Context, sub Subject) (Sightings, error) {
	// No org is "the asker's": the empty org matches none, so every org's
	// sightings come back.
	return s.Sightings(ctx, "", sub)
}

// Known is what threatdesk knows of a subject inside one org.
type Known struct {
	*hunting.Known
	// Campaigns are the campaigns of the subject's name (an actor) the
	// experts tagged on this org's cases and incidents, with how many.
	Campaigns []CampaignCount
}

// CampaignCount is a campaign and how many of one org's cases and
// incidents carry it.
type CampaignCount struct {
	Name  string
	Count int
}

// Known returns what org's own data says of a subject of kind file, ip,
// url or actor: the incidents that involve it, their devices and alerts,
// and for an actor the campaigns of that name tagged in org. Only org's
// data is read. What it shows is on disk, as for Sightings.
func (s *Service) Known(ctx context.Context, org string, sub Subject) (Known, error) {
	k, err := s.hunt.KnownOf(ctx, org, sub.Kind, sub.ID, s.since())
	if err == nil {
		err = s.hunt.Shown(ctx)
	}
	if err != nil {
		return Known{}, err
	}
	out := Known{Known: k}
	if sub.Kind != string(casework.SubjectActor) {
		return out, nil
	}
	key, _, ok := campaignKey(sub.ID)
	if !ok {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `
SELECT c.name, count(*) FROM insight_campaign_tags t JOIN insight_campaigns c ON c.key = t.campaign
WHERE t.campaign = $1 AND t.org = $2 GROUP BY c.name`, key, org)
	if err != nil {
		return out, fmt.Errorf("insight: campaigns of %q in %s: %w", key, org, err)
	}
	defer rows.Close()
	for rows.Next() {
		var c CampaignCount
		if err := rows.Scan(&c.Name, &c.Count); err != nil {
			return out, fmt.Errorf("insight: campaigns of %q in %s: %w", key, org, err)
		}
		out.Campaigns = append(out.Campaigns, c)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("insight: campaigns of %q in %s: %w", key, org, err)
	}
	return out, nil
}
