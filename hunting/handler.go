package hunting

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// IntakePath is where the main package mounts Handler.
const IntakePath = "/api/v1/alerts"

// ErrorBody is the JSON body of every intake error.
type ErrorBody struct {
	Error string `json:"error"`
	// Line, Column and Offset say where malformed JSON broke (400 only).
	Line   int   `json:"line,omitempty"`
	Column int   `json:"column,omitempty"`
	Offset int64 `json:"offset,omitempty"`
}

// RetryAfterUnavailable is the Retry-After (seconds) of a 503 answered while
// the database is unreachable.
const RetryAfterUnavailable = 5

// intakeStoreTimeout bounds storing one request's batch, so that a database
// that does not answer at all (packets dropped, not refused) still gets the
// sender a 503 before the HTTP server's 60 s write timeout cuts it off.
const intakeStoreTimeout = 40 * time.Second

// Handler returns the intake handler for POST /api/v1/alerts: bearer token
// (401), an org's token used for another org's tenant (403, nothing stored),
// body cap (413), item cap (413), malformed JSON (400, saying where), nothing
// usable (422, with per-item reasons), the database unreachable (503 with
// Retry-After, nothing stored), else 200 with an IngestResult naming the
// format received and a result per item. A request with "Prefer:
// respond-async" is answered 202 once its admitted alerts are queued, on
// disk, and they are correlated after the answer (queue.go); a full queue
// is a 503 with Retry-After.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveIntake) }

func (s *Service) serveIntake(w http.ResponseWriter, r *http.Request) {
	code := s.intake(w, r)
	s.m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// authorize checks the bearer token: the admin-wide token (org "") or an
// org's own token (that org). Every configured token is compared, each in
// constant time, so the answer's timing says nothing about which matched.
func (s *Service) authorize(r *http.Request) (org string, ok bool) {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	// Hash both sides so the comparison's time does not depend on lengths.
	got := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	match := func(token string) bool {
		want := sha256.Sum256([]byte(token))
		return token != "" && subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
	if match(s.cfg.IngestToken.Value()) {
		ok = true
	}
	for _, o := range s.liveConfig().Orgs {
		if match(o.IngestToken.Value()) {
			org, ok = o.ID, true
		}
	}
	return org, ok
}

// readBody reads the request's body, at most limit bytes (then the error
// is an *http.MaxBytesError). A declared length sizes the buffer at once:
// a list of 500 alerts is a megabyte, which io.ReadAll reaches by doubling.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n > 0 && n <= limit {
		buf := bytes.NewBuffer(make([]byte, 0, n+bytes.MinRead))
		_, err := buf.ReadFrom(body)
		return buf.Bytes(), err
	}
	return io.ReadAll(body)
}

func (s *Service) intake(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: "use POST"})
	}
	org, ok := s.authorize(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="threatdesk"`)
		return writeJSON(w, http.StatusUnauthorized, ErrorBody{Error: "missing or wrong bearer token (Authorization: Bearer <THREATDESK_INGEST_TOKEN or the org's own token>)"})
	}
	body, err := readBody(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return writeJSON(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: fmt.Sprintf("body larger than %d bytes: split it into smaller lists", mb.Limit)})
		}
		return writeJSON(w, http.StatusBadRequest, ErrorBody{Error: "read body: " + err.Error()})
	}
	items, list, err := SplitPayload(body)
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			return writeJSON(w, http.StatusBadRequest, ErrorBody{Error: se.Error(), Line: se.Line, Column: se.Column, Offset: se.Offset})
		}
		if len(trimOuter(body)) == 0 {
			return writeJSON(w, http.StatusBadRequest, ErrorBody{Error: err.Error()}) // no JSON at all, as malformed JSON
		}
		return writeJSON(w, http.StatusUnprocessableEntity, ErrorBody{Error: err.Error()})
	}
	if len(items) > s.cfg.MaxItems {
		return writeJSON(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: fmt.Sprintf("%d alerts in one request, the limit is %d: split the list", len(items), s.cfg.MaxItems)})
	}
	if len(items) == 0 {
		// A forwarder relaying an empty page: nothing to store, no failure.
		return writeJSON(w, http.StatusOK, IngestResult{Format: FormatEmptyList, Items: []ItemResult{}})
	}
	ctx, cancel := context.WithTimeout(r.Context(), intakeStoreTimeout)
	defer cancel()
	queue := wantsQueue(r)
	res, err := s.ingest(ctx, items, binding{org: org, queue: queue})
	var se *ScopeError
	var qf *QueueFullError
	switch {
	case errors.As(err, &qf):
		s.log.Warn("alert intake: the intake queue is full; asked the sender to retry", "items", len(items), "depth", qf.Depth)
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterQueueFull))
		return writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: qf.Error()})
	case errors.As(err, &se):
		s.log.Warn("alert intake refused: an org's token posted another tenant's alert", "org", se.Org, "item", se.Index, "tenant", se.Tenant)
		return writeJSON(w, http.StatusForbidden, ErrorBody{Error: se.Error()})
	case errors.As(err, new(*notConfirmedError)):
		s.log.Warn("alert intake: the database did not confirm the alerts on disk; asked the sender to retry", "items", len(items), "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterUnavailable))
		return writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: fmt.Sprintf(
			"the database did not confirm that the alerts reached its disk; they may be stored: send them again after %d seconds (stored ones come back unchanged)", RetryAfterUnavailable)})
	case err != nil && storeUnavailable(err) && r.Context().Err() == nil:
		s.log.Warn("alert intake: the database is unreachable; asked the sender to retry", "items", len(items), "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterUnavailable))
		return writeJSON(w, http.StatusServiceUnavailable, ErrorBody{Error: fmt.Sprintf(
			"the database is unreachable; nothing was stored: retry after %d seconds", RetryAfterUnavailable)})
	case err != nil:
		s.log.Error("alert intake failed", "items", len(items), "err", err)
		return writeJSON(w, http.StatusInternalServerError, ErrorBody{Error: "storing the alerts failed; nothing was stored, retry later"})
	}
	if !list {
		switch res.Items[0].Source {
		case SourceGraph:
			res.Format = FormatGraphAlert
		default:
			res.Format = FormatDefenderAlert
		}
	}
	if res.Accepted+res.Updated+res.Unchanged+res.Queued == 0 {
		return writeJSON(w, http.StatusUnprocessableEntity, res)
	}
	if queue {
		// Stored, and to be correlated after this answer (RFC 7240).
		w.Header().Set("Preference-Applied", "respond-async")
		return writeJSON(w, http.StatusAccepted, res)
	}
	return writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, code int, v any) int {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
	return code
}

// storeUnavailable reports whether err means the database could not be
// reached or the connection was lost (an outage, a restart, a fail-over),
// rather than the database refusing the statement: a retry later will do.
// The batch is one transaction, so in every such case nothing was stored
// (or, if the connection dropped during COMMIT, all of it was, and the retry
// finds the alerts unchanged).
func storeUnavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),                           // insufficient resources (too many connections)
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutting down, crashed, starting up
			pe.Code == "40001", pe.Code == "40P01": // serialization failure, deadlock: retry
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded)
}
