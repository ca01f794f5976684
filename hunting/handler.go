package hunting

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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

// Handler returns the intake handler for POST /api/v1/alerts: bearer token
// (401), body cap (413), item cap (413), malformed JSON (400, saying where),
// nothing usable (422, with per-item reasons), else 200 with an
// IngestResult naming the format received and a result per item.
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.serveIntake) }

func (s *Service) serveIntake(w http.ResponseWriter, r *http.Request) {
	code := s.intake(w, r)
	s.m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (s *Service) authorized(r *http.Request) bool {
	if s.cfg.IngestToken == "" {
		return false
	}
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	// Hash both sides so the comparison's time does not depend on lengths.
	got := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	want := sha256.Sum256([]byte(s.cfg.IngestToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func (s *Service) intake(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: "use POST"})
	}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="threatdesk"`)
		return writeJSON(w, http.StatusUnauthorized, ErrorBody{Error: "missing or wrong bearer token (Authorization: Bearer <THREATDESK_INGEST_TOKEN>)"})
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
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
		return writeJSON(w, http.StatusUnprocessableEntity, ErrorBody{Error: err.Error()})
	}
	if len(items) > s.cfg.MaxItems {
		return writeJSON(w, http.StatusRequestEntityTooLarge, ErrorBody{Error: fmt.Sprintf("%d alerts in one request, the limit is %d: split the list", len(items), s.cfg.MaxItems)})
	}
	if len(items) == 0 {
		return writeJSON(w, http.StatusUnprocessableEntity, IngestResult{Format: FormatEmptyList, Items: []ItemResult{}})
	}
	res, err := s.Ingest(r.Context(), items)
	if err != nil {
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
	if res.Accepted+res.Updated+res.Unchanged == 0 {
		return writeJSON(w, http.StatusUnprocessableEntity, res)
	}
	return writeJSON(w, http.StatusOK, res)
}

func writeJSON(w http.ResponseWriter, code int, v any) int {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
	return code
}
