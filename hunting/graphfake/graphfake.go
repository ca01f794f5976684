// Package graphfake is a fake Microsoft Graph for tests of the hunting
// package's alert pull: the identity platform's client-credentials token
// endpoint and GET /v1.0/security/alerts_v2 with the $filter on
// lastUpdateDateTime (ge, and lt), $count, $top and @odata.nextLink paging the pull
// uses, GET /v1.0/security/alerts_v2/{id} (404 with Graph's error body for
// an unknown id), plus switches to throttle (429 with Retry-After).
//
// As Graph documents for alerts_v2, the list has the most recent alerts at
// the top, $orderby is not honoured, and a nextLink runs the query again
// from an offset: an alert updated between two pages (AfterPage) shifts
// the rest. Every answer's Date header is the fake's clock.
package graphfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is a running fake. Point GraphConfig.BaseURL at BaseURL() and
// LoginURL at LoginURL().
type Server struct {
	*httptest.Server

	mu           sync.Mutex
	tenant       string
	clientID     string
	secret       string
	alerts       []alert
	tokens       map[string]bool
	tokenCalls   int
	alertCalls   int
	throttleNext int
	filters      []string
	gets         []string
	failGet      map[string]int
	now          func() time.Time
	afterPage    func(n int)
	pages        int
}

type alert struct {
	lastUpdate time.Time
	body       json.RawMessage
}

// New starts a fake for one tenant and app registration.
func New(tenant, clientID, secret string) *Server {
	s := &Server{tenant: tenant, clientID: clientID, secret: secret, tokens: map[string]bool{}, now: time.Now}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.token)
	mux.HandleFunc("GET /v1.0/security/alerts_v2", s.list)
	mux.HandleFunc("GET /v1.0/security/alerts_v2/{id}", s.get)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		now := s.now()
		s.mu.Unlock()
		w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
		mux.ServeHTTP(w, r)
	}))
	return s
}

// SetClock makes now Graph's time, sent in every answer's Date header
// (time.Now until then).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// AfterPage calls fn with the number of list pages served so far after
// each one is written (outside the fake's lock: fn may Add).
func (s *Server) AfterPage(fn func(n int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.afterPage = fn
}

// BaseURL is the Graph root to configure.
func (s *Server) BaseURL() string { return s.URL + "/v1.0/" }

// LoginURL is the identity platform root to configure.
func (s *Server) LoginURL() string { return s.URL + "/" }

// Add stores Graph alerts (JSON objects with lastUpdateDateTime); an alert
// with the id of a stored one replaces it.
func (s *Server) Add(alerts ...json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range alerts {
		var head struct {
			ID         string `json:"id"`
			LastUpdate string `json:"lastUpdateDateTime"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			return fmt.Errorf("graphfake: alert: %w", err)
		}
		t, err := time.Parse(time.RFC3339Nano, head.LastUpdate)
		if err != nil {
			return fmt.Errorf("graphfake: alert %s lastUpdateDateTime: %w", head.ID, err)
		}
		replaced := false
		for i := range s.alerts {
			var old struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(s.alerts[i].body, &old)
			if old.ID == head.ID {
				s.alerts[i] = alert{t, b}
				replaced = true
			}
		}
		if !replaced {
			s.alerts = append(s.alerts, alert{t, b})
		}
	}
	sort.SliceStable(s.alerts, func(i, j int) bool { return s.alerts[i].lastUpdate.After(s.alerts[j].lastUpdate) })
	return nil
}

// Throttle makes the next n alert requests answer 429 with Retry-After: 1.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleNext = n
}

// Calls reports how many token and alert requests were served.
func (s *Server) Calls() (token, alerts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCalls, s.alertCalls
}

// Filters returns the $filter of every alert request.
func (s *Server) Filters() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.filters...)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenCalls++
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	switch {
	case r.PathValue("tenant") != s.tenant:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant not found."})
	case r.Form.Get("grant_type") != "client_credentials" || r.Form.Get("scope") != "https://graph.microsoft.com/.default":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
	case r.Form.Get("client_id") != s.clientID || r.Form.Get("client_secret") != s.secret:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
	default:
		tok := "fake-token-" + strconv.Itoa(s.tokenCalls)
		s.tokens[tok] = true
		writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "access_token": tok})
	}
}

// Remove deletes the stored alert with id, as Graph forgets old alerts.
func (s *Server) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.alerts {
		if alertID(s.alerts[i].body) == id {
			s.alerts = append(s.alerts[:i], s.alerts[i+1:]...)
			return
		}
	}
}

// Garbled, given to FailGet, makes the alert's GET answer 200 with a body
// cut short (not JSON).
const Garbled = -1

// FailGet makes GET security/alerts_v2/{id} answer status (a 5xx, say, or
// Garbled) for id, until FailGet(id, 0).
func (s *Server) FailGet(id string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failGet == nil {
		s.failGet = map[string]int{}
	}
	if status == 0 {
		delete(s.failGet, id)
		return
	}
	s.failGet[id] = status
}

// Gets returns the ids asked for by GET security/alerts_v2/{id}, in order.
func (s *Server) Gets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.gets...)
}

func alertID(body json.RawMessage) string {
	var head struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &head)
	return head.ID
}

// admit checks the token and the throttle switch of an alert request; it
// answers and returns false when the request goes no further. s.mu is held.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	s.alertCalls++
	if !s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")] {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "InvalidAuthenticationToken"}})
		return false
	}
	if s.throttleNext > 0 {
		s.throttleNext--
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": map[string]string{"code": "TooManyRequests"}})
		return false
	}
	return true
}

// get serves one alert by id, with the @odata.context Graph puts on an
// entity, or Graph's 404 error body.
func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.admit(w, r) {
		return
	}
	id := r.PathValue("id")
	s.gets = append(s.gets, id)
	switch code := s.failGet[id]; {
	case code == Garbled:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id": "` + id + `", "title": "cut sh`))
		return
	case code != 0:
		writeJSON(w, code, map[string]any{"error": map[string]string{"code": "InternalServerError", "message": "fake failure"}})
		return
	}
	for _, a := range s.alerts {
		if alertID(a.body) != id {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(a.body, &m); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": map[string]string{"code": "InternalServerError"}})
			return
		}
		m["@odata.context"] = json.RawMessage(`"https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2/$entity"`)
		writeJSON(w, http.StatusOK, m)
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "NotFound",
		"message": "The requested resource was not found."}})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	if fn := s.serveList(w, r); fn != nil {
		fn(s.pages)
	}
}

// serveList answers a list request and returns the AfterPage hook to call
// once the lock is let go.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request) func(int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.admit(w, r) {
		return nil
	}
	q := r.URL.Query()
	filter := q.Get("$filter")
	s.filters = append(s.filters, filter)
	since, until, err := parseFilter(filter)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "BadRequest", "message": err.Error()}})
		return nil
	}
	top, _ := strconv.Atoi(q.Get("$top"))
	if top <= 0 {
		top = 100
	}
	skip, _ := strconv.Atoi(q.Get("$skiptoken"))
	var match []json.RawMessage
	for _, a := range s.alerts { // the most recent first
		if !a.lastUpdate.Before(since) && (until.IsZero() || a.lastUpdate.Before(until)) {
			match = append(match, a.body)
		}
	}
	out := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2"}
	if q.Get("$count") == "true" {
		out["@odata.count"] = len(match)
	}
	end := min(skip+top, len(match))
	if skip > len(match) {
		skip = end
	}
	page := append([]json.RawMessage{}, match[skip:end]...)
	out["value"] = page
	if end < len(match) {
		next := *r.URL
		nq := next.Query()
		nq.Set("$skiptoken", strconv.Itoa(end))
		next.RawQuery = nq.Encode()
		out["@odata.nextLink"] = s.URL + next.String()
	}
	writeJSON(w, http.StatusOK, out)
	s.pages++
	return s.afterPage
}

// parseFilter reads the filters the pull sends: "lastUpdateDateTime ge T",
// optionally "and lastUpdateDateTime lt T" (until is zero without it).
func parseFilter(filter string) (since, until time.Time, err error) {
	if filter == "" {
		return since, until, nil
	}
	ge, lt, hasLt := strings.Cut(filter, " and ")
	rest, ok := strings.CutPrefix(ge, "lastUpdateDateTime ge ")
	if !ok {
		return since, until, fmt.Errorf("unsupported $filter %q", filter)
	}
	if since, err = time.Parse(time.RFC3339Nano, rest); err != nil {
		return since, until, fmt.Errorf("bad $filter %q: %w", filter, err)
	}
	if hasLt {
		rest, ok := strings.CutPrefix(lt, "lastUpdateDateTime lt ")
		if !ok {
			return since, until, fmt.Errorf("unsupported $filter %q", filter)
		}
		if until, err = time.Parse(time.RFC3339Nano, rest); err != nil {
			return since, until, fmt.Errorf("bad $filter %q: %w", filter, err)
		}
	}
	return since, until, nil
}
