package insight

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/internal/outbox"
)

// Outbox event kinds (payload Event).
const (
	// EventIncidentLinked: an incident was tagged with a campaign, or a
	// campaign it carries was shared: its notification card is edited. On
	// the incident's stream (hunting.Stream).
	EventIncidentLinked = "insight.incident_linked"
	// EventCaseTagged: a case was tagged with a campaign: its desk card is
	// edited. On the case's stream (casework.Stream).
	EventCaseTagged = "insight.case_tagged"
)

// Event is the payload of EventIncidentLinked and EventCaseTagged.
type Event struct {
	Org string `json:"org"`
	// IncidentID is set on EventIncidentLinked, Ref on EventCaseTagged.
	IncidentID int64  `json:"incident_id,omitempty"`
	Ref        string `json:"ref,omitempty"`
	Campaign   string `json:"campaign"`
	// Shared: the event is the campaign being shared.
	Shared bool   `json:"shared,omitempty"`
	By     string `json:"by"`
}

// Campaign names: what an expert may call one.
const (
	MinNameRunes = 2
	MaxNameRunes = 80
)

// TargetKind is what a tag is on.
type TargetKind string

// Targets.
const (
	TargetCase     TargetKind = "case"
	TargetIncident TargetKind = "incident"
)

// Target is a case ("EOD-12") or an incident ("14").
type Target struct {
	Kind TargetKind
	Ref  string
}

func (t Target) String() string {
	if t.Kind == TargetIncident {
		return "incident " + t.Ref
	}
	return t.Ref
}

var (
	caseTargetRE     = regexp.MustCompile(`(?i)^#?eod-?([0-9]{1,12})$`)
	incidentTargetRE = regexp.MustCompile(`(?i)^(?:incident[:#]?|inc-?|#)?([0-9]{1,18})$`)
)

// ParseTarget reads what a tag is on: a case reference (EOD-12, with its
// prefix) or an incident id (14, incident:14, INC-14).
func ParseTarget(s string) (Target, bool) {
	s = strings.TrimSpace(s)
	if m := caseTargetRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err == nil && n > 0 {
			return Target{TargetCase, casework.FormatRef(n)}, true
		}
		return Target{}, false
	}
	if m := incidentTargetRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err == nil && n > 0 {
			return Target{TargetIncident, strconv.FormatInt(n, 10)}, true
		}
	}
	return Target{}, false
}

// campaignKey returns a campaign name's key (lower case, spaces
// collapsed) and the name as shown (spaces collapsed), or ok false for a
// name that cannot be one.
func campaignKey(name string) (key, display string, ok bool) {
	display = strings.Join(strings.Fields(name), " ")
	n := utf8.RuneCountInString(display)
	if n < MinNameRunes || n > MaxNameRunes || !utf8.ValidString(display) {
		return "", "", false
	}
	letters := false
	for _, r := range display {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return "", "", false
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			letters = true
		}
	}
	if !letters {
		return "", "", false
	}
	return strings.ToLower(display), display, true
}

// CheckName says what is wrong with a campaign name, or nil.
func CheckName(name string) error {
	if _, _, ok := campaignKey(name); !ok {
		return &Refusal{Msg: fmt.Sprintf("A campaign or actor name is %d to %d characters with a letter or digit, on one line, e.g. \"Storm-0501\" or \"Midnight Blizzard\".",
			MinNameRunes, MaxNameRunes)}
	}
	return nil
}

// TagResult is what Tag did.
type TagResult struct {
	// Campaign is the campaign's name as first given; Shared whether its
	// name is shared with customers.
	Campaign string
	Shared   bool
	Target   Target
	// Org is the org of the case or incident tagged.
	Org string
	// Title names the target: the incident's title, or the case's subject.
	Title string
	// New is false when it carried the tag already (nothing changed).
	New bool
}

// Tag tags a case or an incident of any org with a campaign (created on
// first use) for experts; by names who did it. Tagging it again changes
// nothing. An incident merged into another is refused, naming that one.
func (s *Service) Tag(ctx context.Context, t Target, name, by string) (TagResult, error) {
	key, display, ok := campaignKey(name)
	if !ok {
		return TagResult{}, CheckName(name)
	}
	res := TagResult{Target: t}
	var incident int64
	switch t.Kind {
	case TargetCase:
		cs, err := s.cases.CaseRefs(ctx, casework.AllOrgs(), []string{t.Ref})
		if err != nil {
			return res, err
		}
		if len(cs) == 0 {
			return res, fmt.Errorf("case %s: %w", t.Ref, ErrNotFound)
		}
		res.Org, res.Title = cs[0].Org, subjectTitle(cs[0].Subject)
	case TargetIncident:
		n, err := strconv.ParseInt(t.Ref, 10, 64)
		if err != nil {
			return res, fmt.Errorf("incident %q: %w", t.Ref, ErrNotFound)
		}
		incs, err := s.hunt.IncidentsByID(ctx, []int64{n})
		if err != nil {
			return res, err
		}
		if len(incs) == 0 {
			return res, fmt.Errorf("incident %d: %w", n, ErrNotFound)
		}
		if incs[0].Status == "merged" {
			return res, &Refusal{Msg: fmt.Sprintf("Incident %d was merged into another incident: tag that one (its card says which).", n)}
		}
		incident, res.Org, res.Title = n, incs[0].Org, incs[0].Title
	default:
		return res, &Refusal{Msg: "Tag a case (EOD-12) or an incident (its number)."}
	}
	now := s.cfg.Now().UTC()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO insight_campaigns (key, name, created_by, created_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (key) DO NOTHING`, key, display, by, now); err != nil {
			return fmt.Errorf("insight: create campaign %q: %w", display, err)
		}
		if err := tx.QueryRow(ctx, `SELECT name, shared_at IS NOT NULL FROM insight_campaigns WHERE key = $1`, key).Scan(&res.Campaign, &res.Shared); err != nil {
			return fmt.Errorf("insight: read campaign %q: %w", display, err)
		}
		tag, err := tx.Exec(ctx, `INSERT INTO insight_campaign_tags (kind, ref, campaign, org, tagged_by, tagged_at) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (kind, ref, campaign) DO NOTHING`, string(t.Kind), t.Ref, key, res.Org, by, now)
		if err != nil {
			return fmt.Errorf("insight: tag %s with %q: %w", t, display, err)
		}
		if res.New = tag.RowsAffected() == 1; !res.New {
			return nil
		}
		ev := outbox.Event{Kind: EventCaseTagged, Stream: casework.Stream(t.Ref),
			Payload: Event{Org: res.Org, Ref: t.Ref, Campaign: res.Campaign, By: by}}
		if t.Kind == TargetIncident {
			ev = outbox.Event{Kind: EventIncidentLinked, Stream: hunting.Stream(incident),
				Payload: Event{Org: res.Org, IncidentID: incident, Campaign: res.Campaign, By: by}}
		}
		if _, err := outbox.Append(ctx, tx, ev); err != nil {
			return fmt.Errorf("insight: tag %s: %w", t, err)
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if res.New {
		s.log.InfoContext(ctx, "tagged with a campaign", "target", t.String(), "org", res.Org, "campaign", res.Campaign)
	}
	return res, nil
}

func subjectTitle(sub casework.Subject) string {
	if sub.Kind == casework.SubjectNone || sub.Kind == "" {
		return "a general question"
	}
	name := sub.ID
	if sub.Name != "" {
		name = sub.Name
	}
	return string(sub.Kind) + " " + name
}

// Campaign is a campaign across orgs, for experts.
type Campaign struct {
	Name      string
	CreatedBy string
	CreatedAt time.Time
	// SharedBy and SharedAt say who shared its name with the customers,
	// and when; SharedAt is nil while it is not shared.
	SharedBy string
	SharedAt *time.Time
	// Items are its tagged cases and incidents, the first seen first.
	Items []CampaignItem
	// First and Last bound its items' activity.
	First, Last time.Time
}

// CampaignItem is one tagged case or incident.
type CampaignItem struct {
	Target Target
	Org    string
	// Title is the incident's title or the case's subject; Status its
	// status.
	Title  string
	Status string
	// First and Last: an incident's alert activity, a case's opening and
	// latest change.
	First, Last time.Time
	TaggedBy    string
	TaggedAt    time.Time
}

// Campaign returns the campaign name (any case) with every tagged case and
// incident across orgs; ErrNotFound when there is none of that name.
func (s *Service) Campaign(ctx context.Context, name string) (*Campaign, error) {
	key, display, ok := campaignKey(name)
	if !ok {
		return nil, CheckName(name)
	}
	c := &Campaign{}
	err := s.pool.QueryRow(ctx, `SELECT name, created_by, created_at, coalesce(shared_by, ''), shared_at FROM insight_campaigns WHERE key = $1`, key).
		Scan(&c.Name, &c.CreatedBy, &c.CreatedAt, &c.SharedBy, &c.SharedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("campaign %q: %w", display, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("insight: read campaign %q: %w", display, err)
	}
	c.CreatedAt = c.CreatedAt.UTC()
	rows, err := s.pool.Query(ctx, `SELECT kind, ref, org, tagged_by, tagged_at FROM insight_campaign_tags WHERE campaign = $1`, key)
	if err != nil {
		return nil, fmt.Errorf("insight: read the tags of %q: %w", display, err)
	}
	var refs []string
	var incs []int64
	for rows.Next() {
		var it CampaignItem
		var kind string
		if err := rows.Scan(&kind, &it.Target.Ref, &it.Org, &it.TaggedBy, &it.TaggedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("insight: read the tags of %q: %w", display, err)
		}
		it.Target.Kind, it.TaggedAt = TargetKind(kind), it.TaggedAt.UTC()
		if it.Target.Kind == TargetCase {
			refs = append(refs, it.Target.Ref)
		} else if n, err := strconv.ParseInt(it.Target.Ref, 10, 64); err == nil {
			incs = append(incs, n)
		}
		c.Items = append(c.Items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insight: read the tags of %q: %w", display, err)
	}
	cases, err := s.cases.CaseRefs(ctx, casework.AllOrgs(), refs)
	if err != nil {
		return nil, err
	}
	byCase := map[string]casework.CaseRef{}
	for _, r := range cases {
		byCase[r.Ref] = r
	}
	acts, err := s.hunt.IncidentsByID(ctx, incs)
	if err == nil {
		// What it shows of the incidents is on disk (as for Sightings).
		err = s.hunt.Shown(ctx)
	}
	if err != nil {
		return nil, err
	}
	byInc := map[string]hunting.IncidentActivity{}
	for _, a := range acts {
		byInc[strconv.FormatInt(a.ID, 10)] = a
	}
	for i := range c.Items {
		it := &c.Items[i]
		if it.Target.Kind == TargetCase {
			if r, ok := byCase[it.Target.Ref]; ok {
				it.Title, it.Status, it.First, it.Last = subjectTitle(r.Subject), string(r.Status), r.CreatedAt, r.UpdatedAt
			}
		} else if a, ok := byInc[it.Target.Ref]; ok {
			it.Title, it.Status, it.First, it.Last = a.Title, a.Status, a.First, a.Last
		}
		if it.First.IsZero() {
			it.First, it.Last = it.TaggedAt, it.TaggedAt
		}
		if c.First.IsZero() || it.First.Before(c.First) {
			c.First = it.First
		}
		if it.Last.After(c.Last) {
			c.Last = it.Last
		}
	}
	sort.SliceStable(c.Items, func(i, j int) bool {
		if !c.Items[i].First.Equal(c.Items[j].First) {
			return c.Items[i].First.Before(c.Items[j].First)
		}
		return c.Items[i].Target.String() < c.Items[j].Target.String()
	})
	return c, nil
}

// Share shares a campaign's name with the customers whose incidents carry
// it: each such incident's notification is edited to name it (and so will
// every later one). changed is false when it was shared already.
func (s *Service) Share(ctx context.Context, name, by string) (c *Campaign, changed bool, err error) {
	key, display, ok := campaignKey(name)
	if !ok {
		return nil, false, CheckName(name)
	}
	now := s.cfg.Now().UTC()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var shown string
		err := tx.QueryRow(ctx, `UPDATE insight_campaigns SET shared_by = $2, shared_at = $3 WHERE key = $1 AND shared_at IS NULL RETURNING name`,
			key, by, now).Scan(&shown)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM insight_campaigns WHERE key = $1)`, key).Scan(&exists); err != nil {
				return fmt.Errorf("insight: share %q: %w", display, err)
			}
			if !exists {
				return fmt.Errorf("campaign %q: %w", display, ErrNotFound)
			}
			return nil
		case err != nil:
			return fmt.Errorf("insight: share %q: %w", display, err)
		}
		changed = true
		rows, err := tx.Query(ctx, `SELECT ref, org FROM insight_campaign_tags WHERE campaign = $1 AND kind = 'incident'`, key)
		if err != nil {
			return fmt.Errorf("insight: share %q: %w", display, err)
		}
		type inc struct {
			id  int64
			org string
		}
		var incs []inc
		for rows.Next() {
			var ref, org string
			if err := rows.Scan(&ref, &org); err != nil {
				rows.Close()
				return fmt.Errorf("insight: share %q: %w", display, err)
			}
			if n, err := strconv.ParseInt(ref, 10, 64); err == nil {
				incs = append(incs, inc{n, org})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("insight: share %q: %w", display, err)
		}
		told := map[int64]bool{}
		for _, i := range incs {
			// A tagged incident merged since: the card people follow is
			// the survivor's.
			id, err := s.hunt.Survivor(ctx, i.org, i.id)
			if err != nil {
				return fmt.Errorf("insight: share %q: %w", display, err)
			}
			if told[id] {
				continue
			}
			told[id] = true
			if _, err := outbox.Append(ctx, tx, outbox.Event{Kind: EventIncidentLinked, Stream: hunting.Stream(id),
				Payload: Event{Org: i.org, IncidentID: id, Campaign: shown, Shared: true, By: by}}); err != nil {
				return fmt.Errorf("insight: share %q: %w", display, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	c, err = s.Campaign(ctx, name)
	if err != nil {
		return nil, false, err
	}
	if changed {
		s.log.InfoContext(ctx, "campaign shared with customers", "campaign", c.Name, "items", len(c.Items))
	}
	return c, changed, nil
}

// Linked is what an incident's notification may say of its campaigns.
type Linked struct {
	// Linked: the experts tagged the incident with a campaign.
	Linked bool
	// Shared are the names of its campaigns the experts shared.
	Shared []string
}

// IncidentLinked returns whether org's incident id carries a campaign, and
// the names of those that are shared: what its notification tells org.
func (s *Service) IncidentLinked(ctx context.Context, org string, id int64) (Linked, error) {
	// An incident merged into this one brings its tags along.
	from, err := s.hunt.MergedFrom(ctx, org, id)
	if err != nil {
		return Linked{}, fmt.Errorf("insight: campaigns of incident %d: %w", id, err)
	}
	refs := []string{strconv.FormatInt(id, 10)}
	for _, m := range from {
		refs = append(refs, strconv.FormatInt(m, 10))
	}
	rows, err := s.pool.Query(ctx, `
SELECT name, shared FROM (
    SELECT DISTINCT ON (c.key) c.name, c.shared_at IS NOT NULL AS shared, t.tagged_at
    FROM insight_campaign_tags t JOIN insight_campaigns c ON c.key = t.campaign
    WHERE t.kind = 'incident' AND t.ref = ANY($1) AND t.org = $2 ORDER BY c.key, t.tagged_at) x
ORDER BY tagged_at, name`, refs, org)
	if err != nil {
		return Linked{}, fmt.Errorf("insight: campaigns of incident %d: %w", id, err)
	}
	defer rows.Close()
	var out Linked
	for rows.Next() {
		var name string
		var shared bool
		if err := rows.Scan(&name, &shared); err != nil {
			return Linked{}, fmt.Errorf("insight: campaigns of incident %d: %w", id, err)
		}
		out.Linked = true
		if shared {
			out.Shared = append(out.Shared, name)
		}
	}
	if err := rows.Err(); err != nil {
		return Linked{}, fmt.Errorf("insight: campaigns of incident %d: %w", id, err)
	}
	return out, nil
}

// CampaignTag is a campaign a case carries.
type CampaignTag struct {
	Name   string
	Shared bool
}

// CaseCampaigns returns the campaigns case ref carries, for its desk card.
func (s *Service) CaseCampaigns(ctx context.Context, ref string) ([]CampaignTag, error) {
	rows, err := s.pool.Query(ctx, `
SELECT c.name, c.shared_at IS NOT NULL FROM insight_campaign_tags t JOIN insight_campaigns c ON c.key = t.campaign
WHERE t.kind = 'case' AND t.ref = $1 ORDER BY t.tagged_at, c.name`, ref)
	if err != nil {
		return nil, fmt.Errorf("insight: campaigns of %s: %w", ref, err)
	}
	tags, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CampaignTag, error) {
		var t CampaignTag
		err := r.Scan(&t.Name, &t.Shared)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("insight: campaigns of %s: %w", ref, err)
	}
	return tags, nil
}

// Names returns up to limit campaign names containing typed (any case),
// the most recently created first: suggestions for experts.
func (s *Service) Names(ctx context.Context, typed string, limit int) ([]string, error) {
	pat := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(strings.ToLower(strings.Join(strings.Fields(typed), " "))) + "%"
	rows, err := s.pool.Query(ctx, `SELECT name FROM insight_campaigns WHERE key LIKE $1 ORDER BY created_at DESC, key LIMIT $2`, pat, limit)
	if err != nil {
		return nil, fmt.Errorf("insight: campaign names: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("insight: campaign names: %w", err)
	}
	return names, nil
}
