package hunting

import (
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

// graphPuller holds the pull's state: cached tokens and per-tenant backoff.
type graphPuller struct {
	mu     sync.Mutex
	tokens map[string]graphToken
	notBef map[string]time.Time
}

// PullGraph pulls each configured tenant once: alerts updated since its
// watermark, page by page, each page ingested in one batch and the
// watermark moved after it commits. The watermark is inclusive (ge), so a
// page boundary inside one timestamp loses nothing; re-reads come back
// "unchanged".
//
// A pulled alert is trusted only for the tenant whose credentials fetched
// it: one whose own tenantId names another tenant is rejected, never routed
// to that tenant's org. The watermark never passes a rejected alert (of
// whatever reason): it stays at the first rejected alert's
// lastUpdateDateTime, so that alert is read again by every pull, and logged,
// until it is accepted (the config or the alert fixed); alerts after it are
// still ingested meanwhile.
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
	s.graph.mu.Lock()
	wait := s.graph.notBef[t.TenantID]
	s.graph.mu.Unlock()
	if now.Before(wait) {
		return 0, &ThrottledError{Status: http.StatusTooManyRequests, RetryAfter: wait.Sub(now)}
	}
	var mark time.Time
	err := s.pool.QueryRow(ctx, `SELECT last_update FROM hunting_graph_watermarks WHERE tenant = $1`, t.TenantID).Scan(&mark)
	if errors.Is(err, pgx.ErrNoRows) {
		mark = s.cfg.Now().UTC().Add(-g.Lookback)
	} else if err != nil {
		return 0, fmt.Errorf("read watermark: %w", err)
	}
	q := url.Values{}
	q.Set("$filter", "lastUpdateDateTime ge "+mark.UTC().Format("2006-01-02T15:04:05.0000000Z"))
	q.Set("$orderby", "lastUpdateDateTime asc")
	q.Set("$top", strconv.Itoa(g.PageSize))
	next := g.BaseURL + "security/alerts_v2?" + q.Encode()
	total := 0
	// hold is where the first rejected alert of this pull holds the watermark.
	held, hold := false, mark
	for page := 0; page < g.MaxPages && next != ""; page++ {
		var body struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"@odata.nextLink"`
		}
		if err := s.graphGet(ctx, g, t, next, &body); err != nil {
			return total, err
		}
		if len(body.Value) == 0 {
			break
		}
		res, err := s.ingest(ctx, body.Value, binding{tenant: t.TenantID})
		if err != nil {
			return total, err
		}
		total += res.Accepted + res.Updated
		for i, raw := range body.Value {
			var lu struct {
				LastUpdate string `json:"lastUpdateDateTime"`
			}
			ts, terr := time.Time{}, json.Unmarshal(raw, &lu)
			if terr == nil {
				ts, terr = ParseTime(lu.LastUpdate)
			}
			if it := res.Items[i]; it.Status == StatusRejected {
				s.log.WarnContext(ctx, "graph pull: alert rejected; the watermark stays at it until it is accepted",
					"tenant", t.TenantID, "id", it.ID, "reason", it.Reason, "last_update", lu.LastUpdate)
				if !held {
					held = true
					if terr == nil {
						hold = ts // else: at the watermark the pull started from
					}
				}
				continue
			}
			if terr == nil && ts.After(mark) {
				mark = ts
			}
		}
		if held && mark.After(hold) {
			mark = hold
		}
		if _, err := s.pool.Exec(ctx, `
INSERT INTO hunting_graph_watermarks (tenant, last_update, updated_at) VALUES ($1, $2, $3)
ON CONFLICT (tenant) DO UPDATE SET last_update = greatest(hunting_graph_watermarks.last_update, EXCLUDED.last_update),
    updated_at = EXCLUDED.updated_at`, t.TenantID, mark, s.cfg.Now().UTC()); err != nil {
			return total, fmt.Errorf("move watermark: %w", err)
		}
		next = body.NextLink
		if next != "" && !strings.HasPrefix(next, g.BaseURL) {
			return total, fmt.Errorf("nextLink %q leaves the configured Graph URL: refusing to send the token there", clip(next, 200))
		}
	}
	return total, nil
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
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		ra := retryAfter(resp.Header.Get("Retry-After"))
		s.graph.mu.Lock()
		s.graph.notBef[t.TenantID] = s.cfg.Now().Add(ra)
		s.graph.mu.Unlock()
		return &ThrottledError{Status: resp.StatusCode, RetryAfter: ra}
	case resp.StatusCode == http.StatusUnauthorized:
		s.graph.mu.Lock()
		delete(s.graph.tokens, t.TenantID)
		s.graph.mu.Unlock()
		return fmt.Errorf("GET security/alerts_v2: HTTP 401: the token was refused; check the app's SecurityAlert.Read.All permission and admin consent")
	case resp.StatusCode/100 != 2:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET security/alerts_v2: HTTP %d: %s", resp.StatusCode, clip(string(b), 300))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, s.cfg.MaxBodyBytes)).Decode(into); err != nil {
		return fmt.Errorf("decode alerts_v2 page: %w", err)
	}
	return nil
}

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
