package hunting

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ThrottledError is Graph asking us to slow down (429, 503).
type ThrottledError struct {
	Status     int
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("graph throttled the pull (HTTP %d): retry after %s", e.Status, e.RetryAfter)
}

type graphToken struct {
	value   string
	expires time.Time
}

// graphPuller holds the pull's state: cached tokens, per-tenant backoff,
// window width and fresh mark, and Graph's time.
type graphPuller struct {
	mu     sync.Mutex
	tokens map[string]graphToken
	notBef map[string]time.Time
	span   map[string]time.Duration
	fresh  map[string]time.Time
	// date is Graph's time as its last answer said, at dateAt on this clock.
	date, dateAt time.Time
	skewWarned   bool
}

// PullGraph pulls each configured tenant once: alerts updated since its
// watermark, window by window, each page ingested as it comes and the
// watermark moved to a window's end once all of it is stored.
//
// A window is [lo, hi) of lastUpdateDateTime, filtered by Graph, and it is
// read in one page: Graph documents neither an order for alerts_v2 (it
// lists the most recent first) nor offsets that hold still while alerts
// change, so a watermark taken from the alerts of a page, or a pull cut
// short between pages, could skip alerts for good. A window that comes
// back with a nextLink is narrowed (by its $count and its page's times)
// and read again; its page is ingested all the same, so nothing read is
// wasted. Only a window narrowed to graphMinSpan is read over several
// pages, and it counts as read only when its pages brought as many alerts
// as its $count said. The windows end Settle before Graph's own time (its
// Date header), so an alert Graph lists a little after its time, or a
// clock here ahead of Graph's, loses nothing; the last window is open up
// to the present, so that new alerts arrive at once.
//
// A pulled alert is trusted only for the tenant whose credentials fetched
// it: one whose own tenantId names another tenant is rejected, never routed
// to that tenant's org. A rejected alert (of whatever reason) does not hold
// the watermark, which would stall the tenant's pull once more than a
// pull's pages of alerts came after it: it is held in hunting_graph_held,
// in the same transaction that moves the watermark past it, and fetched
// again by its id at every pull (logged once, counted) until it is
// accepted (the config or the alert fixed), gone from Graph, or held for
// HoldFor, when it is given up.
//
// It returns the alerts ingested and the first error met (the other tenants
// are still pulled).
func (s *Service) PullGraph(ctx context.Context) (int, error) {
	g := s.cfg.Graph
	if g == nil {
		return 0, errors.New("hunting: graph pull is not configured")
	}
	total := 0
	var errs []error
	tenants := make([]string, len(g.Tenants))
	for i, t := range g.Tenants {
		tenants[i] = t.TenantID
	}
	// Held alerts of a tenant no longer pulled are given up once past the
	// hold time (not before: a replica still on an older config may be
	// the one pulling).
	if err := s.forgetHeld(ctx, tenants, g.HoldFor); err != nil {
		errs = append(errs, fmt.Errorf("hunting: graph pull: %w", err))
	}
	for _, t := range g.Tenants {
		n, err := s.pullTenant(ctx, g, t)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("hunting: graph pull of tenant %s: %w", t.TenantID, err))
		}
	}
	return total, errors.Join(errs...)
}

func (s *Service) pullTenant(ctx context.Context, g *GraphConfig, t GraphTenant) (int, error) {
	now := s.cfg.Now()
	// The watermark, and the throttling any replica was told of.
	var stored, throttled *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT (SELECT last_update FROM hunting_graph_watermarks WHERE tenant = $1),
    (SELECT not_before FROM hunting_graph_throttle WHERE tenant = $1)`, t.TenantID).Scan(&stored, &throttled); err != nil {
		return 0, fmt.Errorf("read watermark: %w", err)
	}
	s.graph.mu.Lock()
	wait := s.graph.notBef[t.TenantID]
	s.graph.mu.Unlock()
	if throttled != nil && throttled.After(wait) {
		wait = *throttled
	}
	if now.Before(wait) {
		return 0, &ThrottledError{Status: http.StatusTooManyRequests, RetryAfter: wait.Sub(now)}
	}
	// The token first: its answer tells Graph's time, which the windows
	// must stay behind.
	if _, err := s.graphToken(ctx, g, t); err != nil {
		return 0, err
	}
	ceiling := s.graphNow().Add(-g.Settle)
	lo := ceiling.Add(-g.Lookback)
	if stored != nil {
		lo = *stored
	}
	if lo.After(ceiling) {
		// Ahead of Graph's time less Settle (moved by an alert stamped in
		// the future, before windows; or a longer Settle): brought back.
		if _, err := s.pool.Exec(ctx, `UPDATE hunting_graph_watermarks SET last_update = $2 WHERE tenant = $1 AND last_update > $2`,
			t.TenantID, ceiling); err != nil {
			return 0, fmt.Errorf("bring the watermark of tenant %s back behind Graph's time: %w", t.TenantID, err)
		}
		lo = ceiling
	}
	total := 0
	var seen []string // ids this pull's pages already brought
	// crowded: the open window had more than a page (its newest page is
	// in): the windows go on up to the ceiling, and then past it, from
	// where the last pulls read (fresh), up to Graph's present, so that
	// new alerts still arrive at once; those move the watermark no further
	// than the ceiling, and are read again once it passes them.
	crowded := false
	present := s.graphNow()
	requests := 0
	for requests < g.MaxPages {
		if crowded && !lo.Before(ceiling) {
			lo = maxTime(lo, s.graphFresh(t.TenantID))
			if !lo.Before(present) {
				break
			}
		}
		end := ceiling
		if crowded && !lo.Before(ceiling) {
			end = present
		}
		hi := end
		if span := s.graphSpan(t.TenantID); span > 0 && lo.Add(span).Before(hi) {
			hi = lo.Add(span)
		}
		open := hi.Equal(ceiling) && !crowded
		w, err := s.pullWindow(ctx, g, t, lo, hi, open, minTime(hi, ceiling))
		total += w.ingested
		requests += w.requests
		seen = append(seen, w.seen...)
		if err != nil {
			return total, err
		}
		if w.read && open {
			break
		}
		if w.read && hi.After(ceiling) {
			s.setGraphFresh(t.TenantID, hi)
		}
		if w.read {
			lo = hi
		} else if open {
			crowded = true
		} else if w.changed {
			break // read again next time
		}
	}
	n, err := s.retryHeld(ctx, g, t, seen)
	return total + n, err
}

// Windows of the Graph pull.
const (
	// graphMinSpan is the narrowest window: one that still has more than
	// a page is read over several pages.
	graphMinSpan = time.Millisecond
	// graphMaxSpan is where a widening window stops counting (no bound).
	graphMaxSpan = 32 * 24 * time.Hour
	// graphWindowPages bounds the pages of one window (500,000 alerts in a
	// millisecond at the default page size: an answer gone wrong).
	graphWindowPages = 1000
)

// graphWindow is what reading one window did.
type graphWindow struct {
	read     bool     // stored whole, and the watermark moved to its end
	changed  bool     // read over pages that shifted: not read
	ingested int      // alerts accepted or updated
	requests int      // list requests sent
	seen     []string // ids its pages brought
}

// pullWindow reads the alerts updated in [lo, hi), or from lo on when it is
// open (the last window, up to the present: what is past hi comes again
// next time), ingesting each page, and moves the watermark to markTo (hi,
// or the ceiling for a window past it) once all of it is stored, in the
// transaction of its last page. A window with more
// than a page is not read (read false): an open one leaves it to the
// caller, a closed one wider than graphMinSpan narrows the next window.
// One less than 40% full lets the next be twice as wide, an empty one four
// times.
func (s *Service) pullWindow(ctx context.Context, g *GraphConfig, t GraphTenant, lo, hi time.Time, open bool, markTo time.Time) (graphWindow, error) {
	var w graphWindow
	filter := "lastUpdateDateTime ge " + graphTime(lo)
	if !open {
		filter += " and lastUpdateDateTime lt " + graphTime(hi)
	}
	q := url.Values{}
	q.Set("$filter", filter)
	q.Set("$top", strconv.Itoa(g.PageSize))
	q.Set("$count", "true")
	next := g.BaseURL + "security/alerts_v2?" + q.Encode()
	dense := !open && hi.Sub(lo) <= graphMinSpan // read over pages
	count := -1
	ids := map[string]bool{}
	for next != "" {
		if w.requests == graphWindowPages {
			return w, fmt.Errorf("the window from %s to %s still has more after %d pages: not read", graphTime(lo), graphTime(hi), w.requests)
		}
		var body struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"@odata.nextLink"`
			Count    *int              `json:"@odata.count"`
		}
		if err := s.graphGet(ctx, g, t, next, &body); err != nil {
			return w, err
		}
		w.requests++
		if body.NextLink != "" && !strings.HasPrefix(body.NextLink, g.BaseURL) {
			return w, fmt.Errorf("nextLink %q leaves the configured Graph URL: refusing to send the token there", clip(body.NextLink, 200))
		}
		if w.requests == 1 && body.Count != nil {
			count = *body.Count
		}
		more := body.NextLink != ""
		taken, held, err := s.ingestPage(ctx, t, body.Value, &w)
		if err != nil {
			return w, err
		}
		for _, id := range w.seen {
			ids[id] = true
		}
		mark := minTime(lo, markTo) // the watermark moves only once the whole window is stored
		switch {
		case !more && (w.requests == 1 || len(ids) >= count):
			mark, w.read = markTo, true
		case !more:
			// Alerts of a dense window changed between its pages, and
			// the offsets shifted past some: read again next time.
			w.changed = true
		}
		if err := s.settlePage(ctx, t.TenantID, mark, taken, held); err != nil {
			return w, err
		}
		switch {
		case more && !dense:
			if !open {
				s.setGraphSpan(t.TenantID, narrowSpan(lo, hi, g.PageSize, body.Count, body.Value))
			}
			return w, nil
		case w.read && w.requests == 1 && len(body.Value) < g.PageSize*2/5:
			if span := s.graphSpan(t.TenantID); span > 0 {
				k := time.Duration(2)
				if len(body.Value) == 0 {
					k = 4
				}
				wider := max(span, k*hi.Sub(lo))
				if wider >= graphMaxSpan {
					wider = 0 // wide enough: no bound
				}
				s.setGraphSpan(t.TenantID, wider)
			}
		}
		next = body.NextLink
	}
	return w, nil
}

// ingestPage ingests a page of a window for the tenant, adds its alerts to
// w, and returns the ids taken in and the alerts rejected (to hold).
func (s *Service) ingestPage(ctx context.Context, t GraphTenant, page []json.RawMessage, w *graphWindow) ([]string, []heldAlert, error) {
	if len(page) == 0 {
		return nil, nil, nil
	}
	res, err := s.ingest(ctx, page, binding{tenant: t.TenantID})
	if err != nil {
		return nil, nil, err
	}
	w.ingested += res.Accepted + res.Updated
	var taken []string
	var held []heldAlert
	for i, raw := range page {
		var head struct {
			ID         string `json:"id"`
			LastUpdate string `json:"lastUpdateDateTime"`
		}
		ts, terr := time.Time{}, json.Unmarshal(raw, &head)
		if terr == nil {
			ts, terr = ParseTime(head.LastUpdate)
		}
		it := res.Items[i]
		id := cmp.Or(it.ID, head.ID)
		w.seen = append(w.seen, id)
		if it.Status == StatusRejected {
			h := heldAlert{id: id, reason: it.Reason}
			if terr == nil {
				h.lastUpdate = &ts
			}
			held = append(held, h)
		} else if id != "" {
			taken = append(taken, id)
		}
	}
	return taken, held, nil
}

// narrowSpan is the width of the next window after [lo, hi) had more than
// a page. Its page's alerts are all at or after the earliest of them, so
// at most count less a page come before it, whatever order Graph gave:
// with count at most two pages, the window up to there fits in a page, and
// up to four pages it is the way there (a page fewer each time). With more
// it is what would hold four fifths of a page were the count spread
// evenly, at most up to there; halved when the count is not known.
func narrowSpan(lo, hi time.Time, pageSize int, count *int, page []json.RawMessage) time.Duration {
	first := hi
	for _, raw := range page {
		var head struct {
			LastUpdate string `json:"lastUpdateDateTime"`
		}
		if json.Unmarshal(raw, &head) != nil {
			continue
		}
		if ts, err := ParseTime(head.LastUpdate); err == nil && !ts.Before(lo) && ts.Before(first) {
			first = ts
		}
	}
	span := hi.Sub(lo) / 2
	switch {
	case count != nil && *count <= 4*pageSize && first.Before(hi):
		span = first.Sub(lo)
	case count != nil && *count > pageSize:
		span = min(time.Duration(float64(hi.Sub(lo))*0.8*float64(pageSize)/float64(*count)), first.Sub(lo))
	}
	return max(span, graphMinSpan)
}

// graphFresh is where the tenant's windows past the ceiling were read up
// to (zero: none), kept in memory: only for speed, the watermark is what
// keeps every alert.
func (s *Service) graphFresh(tenant string) time.Time {
	s.graph.mu.Lock()
	defer s.graph.mu.Unlock()
	return s.graph.fresh[tenant]
}

func (s *Service) setGraphFresh(tenant string, at time.Time) {
	s.graph.mu.Lock()
	defer s.graph.mu.Unlock()
	s.graph.fresh[tenant] = at
}

// graphTime is a time as the pull's $filter writes it.
func graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

// graphSpan is how wide the tenant's next window may be (0: no bound).
func (s *Service) graphSpan(tenant string) time.Duration {
	s.graph.mu.Lock()
	defer s.graph.mu.Unlock()
	return s.graph.span[tenant]
}

func (s *Service) setGraphSpan(tenant string, d time.Duration) {
	s.graph.mu.Lock()
	defer s.graph.mu.Unlock()
	s.graph.span[tenant] = d
}

// graphNow is Graph's time: the last Date header Graph sent, plus the time
// since on this clock's monotonic reading (a step of the wall clock here
// moves nothing); this clock's time until Graph answered.
func (s *Service) graphNow() time.Time {
	s.graph.mu.Lock()
	defer s.graph.mu.Unlock()
	now := s.cfg.Now()
	if s.graph.date.IsZero() {
		return now.UTC()
	}
	return s.graph.date.Add(now.Sub(s.graph.dateAt)).UTC()
}

// noteGraphTime keeps Graph's time from an answer's Date header (whole
// seconds, so up to a second behind: the safe side). A Date more than
// graphMaxSkew from this clock is not believed (a proxy's, or a broken
// one): a day ahead would move the watermark past the alerts of that day.
func (s *Service) noteGraphTime(resp *http.Response) {
	d, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return
	}
	now := s.cfg.Now()
	if skew := d.Sub(now); skew > graphMaxSkew || skew < -graphMaxSkew {
		s.graph.mu.Lock()
		warned := s.graph.skewWarned
		s.graph.skewWarned = true
		s.graph.mu.Unlock()
		if !warned {
			s.log.Warn("graph pull: an answer's Date is far from this clock; this clock's time is used instead (check the host's clock)",
				"date", d, "skew", skew.Round(time.Second))
		}
		return
	}
	s.graph.mu.Lock()
	defer s.graph.mu.Unlock()
	s.graph.date, s.graph.dateAt = d, now
}

// graphMaxSkew is how far Graph's Date may be from this clock to be taken.
const graphMaxSkew = time.Hour

// forgetHeld gives up the held alerts of tenants not in tenants that were
// first rejected longer than holdFor ago, logged and counted like any other.
func (s *Service) forgetHeld(ctx context.Context, tenants []string, holdFor time.Duration) error {
	rows, err := s.pool.Query(ctx, `
DELETE FROM hunting_graph_held WHERE tenant <> ALL($1) AND first_rejected_at < $2
RETURNING tenant, id, tries`, tenants, s.cfg.Now().UTC().Add(-holdFor))
	if err != nil {
		return fmt.Errorf("forget the held alerts of tenants no longer pulled: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tenant, id string
		var tries int
		if err := rows.Scan(&tenant, &id, &tries); err != nil {
			return fmt.Errorf("forget the held alerts of tenants no longer pulled: %w", err)
		}
		s.log.ErrorContext(ctx, "graph pull: a rejected alert of a tenant no longer pulled was never accepted; given up",
			"tenant", tenant, "id", id, "tries", tries)
		s.m.graphHeld.WithLabelValues(heldGivenUp).Inc()
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("forget the held alerts of tenants no longer pulled: %w", err)
	}
	return nil
}

// heldAlert is a rejected pulled alert, held for another try.
type heldAlert struct {
	id         string
	lastUpdate *time.Time
	reason     string
	// fetchFailed: fetching it again failed; its rejection's reason stays.
	fetchFailed bool
}

// settlePage records what a page taught in one transaction: its rejected
// alerts held, its accepted ones no longer held, and the watermark moved
// to mark (never back), so that no crash moves the watermark past a
// rejected alert without holding it.
func (s *Service) settlePage(ctx context.Context, tenant string, mark time.Time, taken []string, held []heldAlert) error {
	now := s.cfg.Now().UTC()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, h := range held {
			if h.id == "" {
				// Nothing to fetch it again by: given up at once.
				s.log.ErrorContext(ctx, "graph pull: alert rejected, and it has no id to fetch it again by; given up",
					"tenant", tenant, "reason", h.reason)
				s.m.graphHeld.WithLabelValues(heldGivenUp).Inc()
				continue
			}
			var fresh bool
			if err := tx.QueryRow(ctx, `
INSERT INTO hunting_graph_held (tenant, id, last_update, reason, first_rejected_at, last_tried_at)
VALUES ($1, $2, $3, $4, $5, $5)
ON CONFLICT (tenant, id) DO UPDATE SET last_update = EXCLUDED.last_update, reason = EXCLUDED.reason,
    last_tried_at = EXCLUDED.last_tried_at, tries = hunting_graph_held.tries + 1
RETURNING xmax = 0`, tenant, h.id, h.lastUpdate, clip(h.reason, 500), now).Scan(&fresh); err != nil {
				return fmt.Errorf("hold rejected alert %s: %w", h.id, err)
			}
			if fresh {
				s.log.WarnContext(ctx, "graph pull: alert rejected; it is fetched again at every pull until it is accepted",
					"tenant", tenant, "id", h.id, "reason", h.reason)
				s.m.graphHeld.WithLabelValues(heldHeld).Inc()
			}
		}
		if len(held) > 0 {
			if err := s.giveUpHeld(ctx, tx, tenant, held, now); err != nil {
				return err
			}
		}
		if len(taken) > 0 {
			tag, err := tx.Exec(ctx, `DELETE FROM hunting_graph_held WHERE tenant = $1 AND id = ANY($2)`, tenant, taken)
			if err != nil {
				return fmt.Errorf("release held alerts: %w", err)
			}
			s.m.graphHeld.WithLabelValues(heldAccepted).Add(float64(tag.RowsAffected()))
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO hunting_graph_watermarks (tenant, last_update, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (tenant) DO UPDATE SET last_update = greatest(hunting_graph_watermarks.last_update, EXCLUDED.last_update),
    updated_at = EXCLUDED.updated_at`, tenant, mark, now); err != nil {
			return fmt.Errorf("move watermark: %w", err)
		}
		return nil
	})
}

// giveUpHeld gives up those of held, read again by a page, that were first
// rejected longer than HoldFor ago.
func (s *Service) giveUpHeld(ctx context.Context, tx pgx.Tx, tenant string, held []heldAlert, now time.Time) error {
	ids := make([]string, len(held))
	for i, h := range held {
		ids[i] = h.id
	}
	rows, err := tx.Query(ctx, `
DELETE FROM hunting_graph_held WHERE tenant = $1 AND id = ANY($2) AND first_rejected_at < $3
RETURNING id, first_rejected_at, tries`, tenant, ids, now.Add(-s.cfg.Graph.HoldFor))
	if err != nil {
		return fmt.Errorf("give up held alerts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var first time.Time
		var tries int
		if err := rows.Scan(&id, &first, &tries); err != nil {
			return fmt.Errorf("give up held alerts: %w", err)
		}
		s.log.ErrorContext(ctx, "graph pull: a rejected alert was never accepted; given up",
			"tenant", tenant, "id", id, "held_since", first, "tries", tries)
		s.m.graphHeld.WithLabelValues(heldGivenUp).Inc()
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("give up held alerts: %w", err)
	}
	return nil
}

// Results of held alerts (threatdesk_hunting_graph_held_total).
const (
	heldHeld     = "held"
	heldAccepted = "accepted"
	heldGone     = "gone"
	heldGivenUp  = "given_up"
)

// graphStatusError is Graph answering a request with an error status
// (other than 401, 404, 429 and 503, which have their own handling).
type graphStatusError struct {
	Status int
	Body   string
}

func (e *graphStatusError) Error() string {
	return fmt.Sprintf("GET security/alerts_v2: HTTP %d: %s", e.Status, e.Body)
}

// errGraphNotFound is Graph's 404: the alert asked for by id is gone.
var errGraphNotFound = errors.New("not found")

// errGraphUndecodable is an answer that is not the JSON asked for (cut
// short, or not an alert): about that request, not Graph as a whole.
var errGraphUndecodable = errors.New("not readable")

// retryHeld fetches the tenant's held alerts again by id and ingests them:
// an accepted one is released, a rejected one stays held until HoldFor has
// passed since it was first rejected, and one gone from Graph is dropped.
// It takes at most HeldPerPull, the longest untried first, none of the ids
// in seen (which this pull already read), and each only once its wait has
// passed since its last try: a minute, doubling with every try, at most an
// hour (about 180 fetches over the 7 days rather than one a pull). A fetch
// that fails for one alert counts as its try and the others go on; a
// throttled one stops the round, keeping what was fetched.
func (s *Service) retryHeld(ctx context.Context, g *GraphConfig, t GraphTenant, seen []string) (int, error) {
	now := s.cfg.Now().UTC()
	if seen == nil {
		seen = []string{} // NULL would make "<> ALL" NULL: no row
	}
	rows, err := s.pool.Query(ctx, `
SELECT id, first_rejected_at, tries FROM hunting_graph_held
WHERE tenant = $1 AND id <> ALL($3)
  AND last_tried_at <= $4::timestamptz - least(interval '1 minute' * power(2, least(tries - 1, 10)), interval '1 hour')
ORDER BY last_tried_at, id LIMIT $2`,
		t.TenantID, g.HeldPerPull, seen, now)
	if err != nil {
		return 0, fmt.Errorf("read held alerts: %w", err)
	}
	type heldRow struct {
		id    string
		first time.Time
		tries int
	}
	hs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (heldRow, error) {
		var h heldRow
		return h, r.Scan(&h.id, &h.first, &h.tries)
	})
	if err != nil {
		return 0, fmt.Errorf("read held alerts: %w", err)
	}
	var raws []json.RawMessage
	var ids []string
	var failed []heldAlert
	var stop error
	inARow := 0 // fetches that failed one after another
	for _, h := range hs {
		if now.Sub(h.first) > g.HoldFor {
			s.log.ErrorContext(ctx, "graph pull: a rejected alert was never accepted; given up",
				"tenant", t.TenantID, "id", h.id, "held_since", h.first, "tries", h.tries)
			if err := s.dropHeld(ctx, t.TenantID, h.id, heldGivenUp); err != nil {
				return 0, err
			}
			continue
		}
		var raw json.RawMessage
		err := s.graphGet(ctx, g, t, g.BaseURL+"security/alerts_v2/"+url.PathEscape(h.id), &raw)
		var status *graphStatusError
		switch {
		case errors.Is(err, errGraphNotFound):
			s.log.InfoContext(ctx, "graph pull: a held alert is gone from Graph; no longer held", "tenant", t.TenantID, "id", h.id)
			if err := s.dropHeld(ctx, t.TenantID, h.id, heldGone); err != nil {
				return 0, err
			}
			continue
		case err != nil && (errors.As(err, &status) || errors.Is(err, errGraphUndecodable)) && ctx.Err() == nil && inARow < 2:
			// Graph answered about this alert (400, 403, a 5xx, an
			// answer that cannot be read): its try; the others go on,
			// unless Graph keeps failing.
			inARow++
			s.log.WarnContext(ctx, "graph pull: could not fetch a held alert; tried again later", "tenant", t.TenantID, "id", h.id, "err", err)
			failed = append(failed, heldAlert{id: h.id, fetchFailed: true})
			continue
		case err != nil:
			// Throttled, refused token, no answer, or three failures in a
			// row: Graph is not answering, so the round stops here.
			stop = fmt.Errorf("fetch held alert %s: %w", h.id, err)
		}
		if stop != nil {
			break
		}
		inARow = 0
		raws, ids = append(raws, raw), append(ids, h.id)
	}
	n := 0
	var taken []string
	held := failed
	if len(raws) > 0 {
		res, err := s.ingest(ctx, raws, binding{tenant: t.TenantID})
		if err != nil {
			return 0, err
		}
		for i, it := range res.Items {
			if it.Status == StatusRejected {
				held = append(held, heldAlert{id: ids[i], reason: it.Reason})
			} else {
				taken = append(taken, ids[i])
			}
		}
		n = res.Accepted + res.Updated
	}
	if len(taken) > 0 || len(held) > 0 {
		if err := s.settleHeld(ctx, t.TenantID, taken, held); err != nil {
			return n, err
		}
	}
	return n, stop
}

// settleHeld records one round of held alerts fetched again: the accepted
// released, the others tried once more.
func (s *Service) settleHeld(ctx context.Context, tenant string, taken []string, held []heldAlert) error {
	now := s.cfg.Now().UTC()
	ids, reasons := make([]string, len(held)), make([]string, len(held))
	for i, h := range held {
		ids[i], reasons[i] = h.id, clip(h.reason, 500) // "": a failed fetch keeps the rejection's reason
	}
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM hunting_graph_held WHERE tenant = $1 AND id = ANY($2)`, tenant, taken).Exec(func(tag pgconn.CommandTag) error {
		s.m.graphHeld.WithLabelValues(heldAccepted).Add(float64(tag.RowsAffected()))
		return nil
	})
	b.Queue(`
UPDATE hunting_graph_held h SET reason = coalesce(nullif(x.reason, ''), h.reason), last_tried_at = $4, tries = h.tries + 1
FROM unnest($2::text[], $3::text[]) AS x(id, reason) WHERE h.tenant = $1 AND h.id = x.id`, tenant, ids, reasons, now)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("settle held alerts: %w", err)
	}
	return nil
}

func (s *Service) dropHeld(ctx context.Context, tenant, id, result string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM hunting_graph_held WHERE tenant = $1 AND id = $2`, tenant, id); err != nil {
		return fmt.Errorf("drop held alert %s: %w", id, err)
	}
	s.m.graphHeld.WithLabelValues(result).Inc()
	return nil
}

// graphGet GETs u with the tenant's token and decodes the JSON answer.
func (s *Service) graphGet(ctx context.Context, g *GraphConfig, t GraphTenant, u string, into any) error {
	tok, err := s.graphToken(ctx, g, t)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	resp, err := g.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET security/alerts_v2: %w", err)
	}
	defer resp.Body.Close()
	s.noteGraphTime(resp)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		ra := retryAfter(resp.Header.Get("Retry-After"))
		until := s.cfg.Now().Add(ra)
		s.graph.mu.Lock()
		s.graph.notBef[t.TenantID] = until
		s.graph.mu.Unlock()
		// For the other replicas too; this one remembers it if the write fails.
		if _, err := s.pool.Exec(ctx, `INSERT INTO hunting_graph_throttle (tenant, not_before) VALUES ($1, $2)
ON CONFLICT (tenant) DO UPDATE SET not_before = greatest(hunting_graph_throttle.not_before, EXCLUDED.not_before)`, t.TenantID, until); err != nil {
			s.log.Warn("graph throttling not recorded for the other replicas", "tenant", t.TenantID, "err", err)
		}
		return &ThrottledError{Status: resp.StatusCode, RetryAfter: ra}
	case resp.StatusCode == http.StatusUnauthorized:
		s.graph.mu.Lock()
		delete(s.graph.tokens, t.TenantID)
		s.graph.mu.Unlock()
		return fmt.Errorf("GET security/alerts_v2: HTTP 401: the token was refused; check the app's SecurityAlert.Read.All permission and admin consent")
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("GET security/alerts_v2: HTTP 404: %w", errGraphNotFound)
	case resp.StatusCode/100 != 2:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return &graphStatusError{Status: resp.StatusCode, Body: clip(string(b), 300)}
	}
	// A page's own limit, not the intake's (hunting.max_body_bytes, which an
	// operator may set low): a page over it could never be read, and the
	// tenant's pull would stall on it.
	if err := json.NewDecoder(io.LimitReader(resp.Body, max(s.cfg.MaxBodyBytes, graphMaxBody))).Decode(into); err != nil {
		return fmt.Errorf("decode alerts_v2 page: %w: %w", errGraphUndecodable, err)
	}
	return nil
}

// graphMaxBody is the least a Graph answer may take: 500 alerts of 128 KiB.
const graphMaxBody = 64 << 20

func retryAfter(h string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 {
		return min(time.Duration(n)*time.Second, time.Hour)
	}
	if t, err := http.ParseTime(h); err == nil {
		return min(max(time.Until(t), 0), time.Hour)
	}
	return 30 * time.Second
}

// graphToken returns a cached token or gets one with client credentials.
func (s *Service) graphToken(ctx context.Context, g *GraphConfig, t GraphTenant) (string, error) {
	s.graph.mu.Lock()
	tok, ok := s.graph.tokens[t.TenantID]
	s.graph.mu.Unlock()
	if ok && s.cfg.Now().Before(tok.expires) {
		return tok.value, nil
	}
	form := url.Values{}
	form.Set("grant_type", "client_credentials")
	form.Set("client_id", t.ClientID)
	form.Set("client_secret", t.ClientSecret.Value())
	form.Set("scope", "https://graph.microsoft.com/.default")
	u := g.LoginURL + url.PathEscape(t.TenantID) + "/oauth2/v2.0/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("build token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := g.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("get token: %w", err)
	}
	defer resp.Body.Close()
	s.noteGraphTime(resp)
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		// The identity platform's error code says what to fix; the secret
		// and the token never go in the message.
		return "", fmt.Errorf("get token for client %s: HTTP %d %s: %s", t.ClientID, resp.StatusCode, clip(body.Error, 100), clip(body.Description, 200))
	}
	life := time.Duration(max(body.ExpiresIn, 120)) * time.Second
	s.graph.mu.Lock()
	s.graph.tokens[t.TenantID] = graphToken{value: body.AccessToken, expires: s.cfg.Now().Add(life - time.Minute)}
	s.graph.mu.Unlock()
	return body.AccessToken, nil
}
