package bot

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The More button of case lists and searches (migrations/0015_bot_pages.sql).
// The button carries an opaque token and nothing else; the token names a
// row, shared by every replica, that says what is listed, for whom, and
// where the next page starts. A token pressed by someone of another scope
// (another org's member; a manager continuing an expert's search, which
// may match internal notes) is refused exactly as an unknown or expired one.

// pageTTL is how long a More button works.
const pageTTL = 24 * time.Hour

// Page kinds.
const (
	pageList   = "list"
	pageSearch = "search"
)

// pageQuery is what a page token stands for.
type pageQuery struct {
	Kind  string `json:"kind"`
	Title string `json:"title"`
	// Scope is what the list reads with (a manager narrowing a list to one
	// org reads that org's).
	Scope  Scope       `json:"scope"`
	Filter CaseFilter  `json:"filter"`
	Search SearchQuery `json:"search"`
	// ShowOrg shows each case's org (lists across orgs).
	ShowOrg bool `json:"show_org"`
	// Cursor is where the next page starts (the domain's token); Shown is
	// how many cases the earlier pages showed.
	Cursor string `json:"cursor"`
	Shown  int    `json:"shown"`
}

// pageScope is who may continue a list: the scope of the person who asked
// for it. Searches by experts may match internal notes, which managers do
// not search: theirs is a scope of its own.
func pageScope(w who, search bool) string {
	s, _ := w.scope()
	switch {
	case s.All && search && w.has(RoleExpert):
		return "all+internal"
	case s.All:
		return "all"
	}
	return "org:" + s.Org
}

// newPageToken is 16 random bytes, URL-safe: 22 characters.
func newPageToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("page token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// savePage stores q for scope and returns its token. Expired pages are
// deleted by the same statement.
func (b *Bot) savePage(ctx context.Context, p Platform, scope string, q pageQuery) (string, error) {
	tok, err := newPageToken()
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(q)
	if err != nil {
		return "", fmt.Errorf("save page: %w", err)
	}
	_, err = b.db.Exec(ctx, `WITH gone AS (DELETE FROM bot_pages WHERE expires_at < now())
INSERT INTO bot_pages (token, platform, scope, query, expires_at) VALUES ($1, $2, $3, $4, now() + $5::interval)`,
		tok, string(p), scope, body, pageTTL)
	if err != nil {
		return "", fmt.Errorf("save page: %w", err)
	}
	return tok, nil
}

// errPageGone answers a More press whose token is unknown, expired or
// another scope's: the same words for all three.
var errPageGone = &Refusal{Msg: "This list can no longer be continued from here. Run the command again to see it from the start."}

// loadPage returns the query of token for a press by w on platform p;
// errPageGone when there is none for them.
func (b *Bot) loadPage(ctx context.Context, p Platform, w who, token string) (pageQuery, error) {
	var q pageQuery
	var stored string
	var body []byte
	err := b.db.QueryRow(ctx, `SELECT scope, query FROM bot_pages WHERE token = $1 AND platform = $2 AND expires_at > now()`,
		token, string(p)).Scan(&stored, &body)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return q, errPageGone
	case err != nil:
		return q, fmt.Errorf("load page: %w", err)
	}
	if err := json.Unmarshal(body, &q); err != nil {
		return q, fmt.Errorf("load page: %w", err)
	}
	if stored != pageScope(w, q.Kind == pageSearch) {
		b.log.Info("a More button of another scope was pressed; refused as an unknown one", "platform", p, "user", w.user.ID)
		return pageQuery{}, errPageGone
	}
	return q, nil
}
