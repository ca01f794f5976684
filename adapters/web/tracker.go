package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
)

// The case tracker: the pages under /web/ (README.md, "The case tracker").
// Every page needs a session (session.go) and reads casework with the
// session's viewer, so a member sees their org only and another org's case
// is "not found" exactly like a case that does not exist. Forms are POSTs
// with the session's CSRF token; GET pages change nothing. URLs carry no
// case data beyond a case reference: filters are choices from fixed lists,
// the search text travels in a POST body.

// Cases is what the tracker reads from the domain; *casework.Service
// implements it.
type Cases interface {
	List(ctx context.Context, v casework.Viewer, f casework.ListFilter) (*casework.ListPage, error)
	Search(ctx context.Context, v casework.Viewer, q casework.SearchQuery) (*casework.SearchPage, error)
	Export(ctx context.Context, v casework.Viewer, ref string, forExpert bool) (*casework.Record, error)
	Samples(ctx context.Context, v casework.Viewer, ref string) ([]casework.Sample, error)
	IssueDownloadLink(ctx context.Context, ref string, sampleID int64, by casework.Actor) (*casework.DownloadLink, error)
	Report(ctx context.Context, v casework.Viewer, req casework.ReportRequest) (*casework.Report, error)
	Config() casework.Config
}

var _ Cases = (*casework.Service)(nil)

// Tracker paths below TrackerPath.
const (
	casePath    = TrackerPath + "cases/"
	searchPath  = TrackerPath + "search"
	reportPath  = TrackerPath + "report"
	signOutPath = TrackerPath + "logout"
	// listPage is the case list's page size.
	listPage = 25
	// formBody caps a tracker form's body.
	formBody = 16 << 10
)

func (h *Handler) trackerRoutes() []Route {
	return []Route{
		{Pattern: SignInPath + "{token}", MaxBody: 4 << 10, Handler: http.HandlerFunc(h.serveSignIn)},
		{Pattern: TrackerPath + "{$}", MaxBody: formBody, Handler: h.signedIn(h.serveCases)},
		{Pattern: searchPath, MaxBody: formBody, Handler: h.signedIn(h.serveSearch)},
		{Pattern: casePath + "{ref}", MaxBody: formBody, Handler: h.signedIn(h.serveCase)},
		{Pattern: casePath + "{ref}/download", MaxBody: formBody, Handler: h.signedIn(h.serveSampleDownload)},
		{Pattern: reportPath, MaxBody: formBody, Handler: h.signedIn(h.serveReport)},
		{Pattern: signOutPath, MaxBody: formBody, Handler: h.signedIn(h.serveSignOut)},
		{Pattern: TrackerPath, MaxBody: formBody, Handler: http.HandlerFunc(h.serveTrackerNotFound)},
	}
}

// navView is the tracker's page header.
type navView struct {
	Name, Role, CSRF                string
	CasesURL, ReportURL, SignOutURL string
	Active                          string
	Expires                         string
}

func (h *Handler) nav(s *session, active string) *navView {
	return &navView{Name: s.name(), Role: s.roleText(), CSRF: s.csrf, Active: active,
		CasesURL: h.cfg.Links.page(TrackerPath), ReportURL: h.cfg.Links.page(reportPath), SignOutURL: h.cfg.Links.page(signOutPath),
		Expires: h.timeText(s.expires)}
}

// renderTracker renders a tracker page with the header.
func (h *Handler) renderTracker(w http.ResponseWriter, status int, name string, nav *navView, data any) {
	h.renderView(w, status, name, view{CSS: h.pages.css, Nav: nav, Wide: true, Page: data})
}

// notFound answers a case the session may not see exactly as one that does
// not exist.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request, s *session) {
	h.renderTracker(w, http.StatusNotFound, "message", h.nav(s, ""), message{Title: "Not found",
		Lines: []string{"There is no such case, or it is not one you can see. Check the reference in the case list."}})
}

func (h *Handler) serveTrackerNotFound(w http.ResponseWriter, r *http.Request) {
	h.say(w, r, http.StatusNotFound, message{Title: "Not found", Lines: []string{"There is no such page in the case tracker."}})
}

// trackerError answers a casework error on a tracker page: not found, bad
// input (its sentence), or a failure (logged).
func (h *Handler) trackerError(w http.ResponseWriter, r *http.Request, s *session, what string, err error) {
	switch {
	case errors.Is(err, casework.ErrNotFound):
		h.notFound(w, r, s)
	case errors.Is(err, casework.ErrInvalid):
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "+casework.ErrInvalid.Error()); i > 0 {
			msg = msg[:i]
		}
		h.renderTracker(w, http.StatusBadRequest, "message", h.nav(s, ""), message{Title: "That did not work", Lines: []string{msg + "."}})
	default:
		h.log.ErrorContext(r.Context(), "case tracker", "what", what, "err", err)
		h.renderTracker(w, http.StatusInternalServerError, "message", h.nav(s, ""), message{Title: "Something went wrong",
			Lines: []string{"threatdesk could not " + what + ". Try again in a minute."}})
	}
}

// option is one choice of a select.
type option struct {
	Value, Label string
	Selected     bool
}

// listFilter is the case list's filters as chosen in its form.
type listFilter struct {
	Status, Org, Priority string
	Breaching             bool
	Page                  int
	// After continues the list from the page before (casework's page
	// token): cases concluded, newly at risk or opened meanwhile neither
	// skip nor repeat a case, as counting by page would.
	After string
}

// statusChoices are the status filter's values.
func statusChoices() []option {
	out := []option{{Value: "open", Label: "Open"}, {Value: "all", Label: "All"}}
	for _, st := range casework.Statuses() {
		out = append(out, option{Value: string(st), Label: statusLabel(st)})
	}
	return out
}

// priorityChoices are the priority filter's values.
func priorityChoices() []option {
	return []option{{Value: "", Label: "Any"}, {Value: "high", Label: "High"}, {Value: "medium", Label: "Medium"}, {Value: "low", Label: "Low"}}
}

// orgs lists the orgs the session may choose from ("" for a member, who
// sees one).
func (h *Handler) orgs(s *session) []bot.WebOrg {
	if !s.allOrgs() {
		return nil
	}
	if d := h.directory(); d != nil {
		return d.WebOrgs()
	}
	return nil
}

func (h *Handler) orgName(s *session, id string) string {
	if !s.allOrgs() && id == s.org {
		return s.orgName
	}
	for _, o := range h.orgs(s) {
		if o.ID == id {
			return o.Name
		}
	}
	return id
}

// readFilter reads the list's filters from q; a value that is not one of
// the choices is an error that names it.
func (h *Handler) readFilter(s *session, q url.Values) (listFilter, error) {
	f := listFilter{Status: q.Get("status"), Org: q.Get("org"), Priority: q.Get("priority"), Breaching: q.Get("breaching") == "1", Page: 1}
	if f.Status == "" {
		f.Status = "open"
	}
	if !slices.ContainsFunc(statusChoices(), func(o option) bool { return o.Value == f.Status }) {
		return f, errors.New("the status filter " + strconv.Quote(f.Status) + " is not one of the list's")
	}
	if !slices.ContainsFunc(priorityChoices(), func(o option) bool { return o.Value == f.Priority }) {
		return f, errors.New("the priority filter " + strconv.Quote(f.Priority) + " is not high, medium or low")
	}
	if f.Org != "" {
		if !slices.ContainsFunc(h.orgs(s), func(o bot.WebOrg) bool { return o.ID == f.Org }) {
			// A member gets the same answer for a real org and a made-up one.
			return f, errors.New("there is no org " + strconv.Quote(f.Org) + " to choose")
		}
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 10000 {
			return f, errors.New("page " + strconv.Quote(p) + " is not a page number")
		}
		f.Page = n
	}
	if a := q.Get("after"); a != "" && f.Page > 1 {
		f.After = a // checked by casework, which refuses a token not its own
	}
	return f, nil
}

// query is the filter as the list's URL query (page p, continuing after
// the token after when it is set).
func (f listFilter) query(p int, after string) string {
	q := url.Values{}
	if f.Status != "open" {
		q.Set("status", f.Status)
	}
	if f.Org != "" {
		q.Set("org", f.Org)
	}
	if f.Priority != "" {
		q.Set("priority", f.Priority)
	}
	if f.Breaching {
		q.Set("breaching", "1")
	}
	if p > 1 {
		q.Set("page", strconv.Itoa(p))
		if after != "" {
			q.Set("after", after)
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// casework is the filter as casework's.
func (f listFilter) casework() casework.ListFilter {
	out := casework.ListFilter{Org: f.Org, Breaching: f.Breaching, Limit: listPage, PageToken: f.After}
	if f.After == "" {
		out.Offset = (f.Page - 1) * listPage
	}
	switch f.Status {
	case "open":
		out.Statuses = casework.OpenStatuses()
	case "all":
	default:
		out.Statuses = []casework.Status{casework.Status(f.Status)}
	}
	if f.Priority != "" {
		out.Priorities = []casework.Priority{casework.Priority(f.Priority)}
	}
	return out
}

// caseRow is one row of the case list.
type caseRow struct {
	Ref, URL, Org, Subject, Priority, PriorityClass string
	Status, StatusClass, Assignee, Age              string
	SLA                                             slaState
}

// casesView is the data of cases.html.
type casesView struct {
	Action, SearchAction, CSRF string
	Filter                     listFilter
	Statuses, Priorities, Orgs []option
	Search                     string
	Searching                  bool
	SearchNote                 string
	Rows                       []caseRow
	Summary                    string
	PrevURL, NextURL           string
	// More continues a search: its form posts Search and Cursor.
	More   bool
	Cursor string
	Empty  string
}

func (h *Handler) rows(s *session, cs []casework.Case) []caseRow {
	now := h.cfg.Now()
	out := make([]caseRow, 0, len(cs))
	for _, c := range cs {
		r := caseRow{Ref: c.Ref, URL: h.cfg.Links.page(casePath + url.PathEscape(c.Ref)), Org: h.orgName(s, c.Org),
			Subject: subjectText(c.Subject), Priority: string(c.Priority), PriorityClass: "prio-" + string(c.Priority),
			Status: statusLabel(c.Status), StatusClass: statusClass(c.Status), Assignee: c.Assignee.Name(),
			Age: durationText(now.Sub(c.CreatedAt)), SLA: listSLA(c, now)}
		if c.Assignee.IsZero() {
			r.Assignee = "—"
		}
		out = append(out, r)
	}
	return out
}

// listView fills the parts of casesView the list and search share.
func (h *Handler) listView(s *session, f listFilter) casesView {
	v := casesView{Action: h.cfg.Links.page(TrackerPath), SearchAction: h.cfg.Links.page(searchPath), CSRF: s.csrf, Filter: f}
	for _, o := range statusChoices() {
		o.Selected = o.Value == f.Status
		v.Statuses = append(v.Statuses, o)
	}
	for _, o := range priorityChoices() {
		o.Selected = o.Value == f.Priority
		v.Priorities = append(v.Priorities, o)
	}
	if orgs := h.orgs(s); len(orgs) > 0 {
		v.Orgs = append(v.Orgs, option{Value: "", Label: "All orgs", Selected: f.Org == ""})
		for _, o := range orgs {
			v.Orgs = append(v.Orgs, option{Value: o.ID, Label: o.Name, Selected: o.ID == f.Org})
		}
	}
	return v
}

// serveCases is the case list: GET shows it; POST (its filter form)
// redirects to the list with the filters chosen.
func (h *Handler) serveCases(w http.ResponseWriter, r *http.Request, s *session) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		f, err := h.readFilter(s, r.PostForm)
		if err != nil {
			h.renderTracker(w, http.StatusBadRequest, "message", h.nav(s, "cases"), message{Title: "That filter does not work", Lines: []string{err.Error() + "."}})
			return
		}
		http.Redirect(w, r, h.cfg.Links.page(TrackerPath)+f.query(1, ""), http.StatusSeeOther)
		return
	default:
		h.methodNotAllowed(w, r, "GET, POST")
		return
	}
	f, err := h.readFilter(s, r.URL.Query())
	if err != nil {
		h.renderTracker(w, http.StatusBadRequest, "message", h.nav(s, "cases"), message{Title: "That filter does not work", Lines: []string{err.Error() + "."}})
		return
	}
	page, err := h.cfg.Cases.List(r.Context(), s.viewer(), f.casework())
	if err != nil {
		h.trackerError(w, r, s, "list the cases", err)
		return
	}
	v := h.listView(s, f)
	v.Rows = h.rows(s, page.Cases)
	// Where the page stands in the list as it is now (cases concluded or
	// opened since the first page moved it).
	from := page.Total - page.Remaining - len(page.Cases) + 1
	switch {
	case page.Total == 0:
		v.Empty = "No cases match these filters."
	case len(page.Cases) == 0:
		v.Empty = "This page is past the end of the list."
		v.Summary = strconv.Itoa(page.Total) + " cases"
	default:
		v.Summary = strconv.Itoa(from) + "–" + strconv.Itoa(from+len(page.Cases)-1) + " of " + strconv.Itoa(page.Total) + " cases, most urgent first"
	}
	if f.Page > 1 {
		v.PrevURL = h.cfg.Links.page(TrackerPath) + f.query(f.Page-1, "")
	}
	if page.Remaining > 0 {
		v.NextURL = h.cfg.Links.page(TrackerPath) + f.query(f.Page+1, page.Next)
	}
	h.renderTracker(w, http.StatusOK, "cases", h.nav(s, "cases"), v)
}

// searchKinds say how a search text was read.
var searchKinds = map[casework.SearchKind]string{
	casework.SearchRef:     "the case",
	casework.SearchUser:    "cases asked or held by that user",
	casework.SearchHash:    "cases about or mentioning that hash",
	casework.SearchSubject: "cases about or mentioning that name",
	casework.SearchText:    "cases whose question, conclusion or messages have these words",
}

// serveSearch is POST /web/search: the same search as "/experts cases
// search", newest first, with More continuing it.
func (h *Handler) serveSearch(w http.ResponseWriter, r *http.Request, s *session) {
	if r.Method != http.MethodPost {
		h.methodNotAllowed(w, r, "POST")
		return
	}
	text := strings.TrimSpace(r.PostForm.Get("q"))
	v := h.listView(s, listFilter{Status: "open"})
	v.Search, v.Searching = text, true
	page, err := h.cfg.Cases.Search(r.Context(), s.viewer(), casework.SearchQuery{Text: text, Internal: s.expert(),
		Limit: listPage, Cursor: r.PostForm.Get("cursor")})
	if errors.Is(err, casework.ErrInvalid) {
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "+casework.ErrInvalid.Error()); i > 0 {
			msg = msg[:i]
		}
		v.Empty = strings.TrimPrefix(msg, "search: ") + "."
		h.renderTracker(w, http.StatusBadRequest, "cases", h.nav(s, "cases"), v)
		return
	}
	if err != nil {
		h.trackerError(w, r, s, "search the cases", err)
		return
	}
	v.Rows = h.rows(s, page.Cases)
	v.SearchNote = "Looked for " + searchKinds[page.Kind] + ", newest first."
	if len(page.Cases) == 0 {
		v.Empty = "No case matches."
	}
	v.More, v.Cursor = page.More, page.Next
	h.renderTracker(w, http.StatusOK, "cases", h.nav(s, "cases"), v)
}
