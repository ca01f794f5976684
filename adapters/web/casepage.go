package web

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
)

// messageView is one message of a case's conversation.
type messageView struct {
	Author, Side, At, Text, Class string
	Internal                      bool
}

// sampleView is one file sample of a case.
type sampleView struct {
	ID                             int64
	Name, Size, SHA256, SHA1, MD5  string
	From, At, Match, Deleted, Side string
}

// caseView is the data of case.html.
type caseView struct {
	Ref, Org, Status, StatusClass, Priority, PriorityClass string
	Category, Subject, SubjectID, SubjectLink, SubjectAddr string
	Requester, Assignee, Opened, Question, Summary         string
	Clocks                                                 []clockView
	Messages                                               []messageView
	Internal                                               bool // internal notes are shown
	Samples                                                []sampleView
	CanDownload                                            bool
	DownloadAction, CSRF                                   string
	Timeline                                               timelineView
}

// serveCase is GET /web/cases/{ref}: the case's header with its SLA
// clocks, the question, the conversation (internal notes for experts), the
// samples (with downloads for experts) and the verified timeline.
func (h *Handler) serveCase(w http.ResponseWriter, r *http.Request, s *session) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.methodNotAllowed(w, r, "GET")
		return
	}
	ref := r.PathValue("ref")
	if _, err := casework.ParseRef(ref); err != nil {
		h.notFound(w, r, s) // the same answer as for a case that does not exist
		return
	}
	ctx := r.Context()
	rec, err := h.cfg.Cases.Export(ctx, s.viewer(), ref, s.expert())
	if err != nil {
		h.trackerError(w, r, s, "read the case", err)
		return
	}
	smps, err := h.cfg.Cases.Samples(ctx, s.viewer(), rec.Ref)
	if err != nil {
		h.trackerError(w, r, s, "read the case's samples", err)
		return
	}
	now := h.cfg.Now()
	v := caseView{Ref: rec.Ref, Org: h.orgName(s, rec.Org), Status: statusLabel(rec.Status), StatusClass: statusClass(rec.Status),
		Priority: string(rec.Priority), PriorityClass: "prio-" + string(rec.Priority), Category: categoryLabel(rec.Category),
		Subject: subjectText(rec.Subject), Requester: rec.Requester.Name(), Assignee: "nobody yet", Opened: h.timeText(rec.OpenedAt),
		Question: rec.Question, Summary: rec.Summary, Internal: rec.IncludesInternal, CanDownload: s.expert(), CSRF: s.csrf,
		DownloadAction: h.cfg.Links.page(casePath + url.PathEscape(rec.Ref) + "/download"), Timeline: h.timeline(rec)}
	if rec.Subject.Kind != casework.SubjectNone && rec.Subject.Kind != "" && rec.Subject.Name != "" {
		v.SubjectID = rec.Subject.ID
	}
	if rec.Subject.Link != "" {
		// An alert's link is whatever its sender wrote: a link only to
		// Microsoft's portals, as in chat; otherwise shown as text.
		if u, ok := bot.PortalLink(rec.Subject.Link); ok {
			v.SubjectLink = u
		} else {
			v.SubjectAddr = rec.Subject.Link
		}
	}
	if rec.Assignee != nil {
		v.Assignee = rec.Assignee.Name()
	}
	v.Clocks = []clockView{h.clock("First response", rec.SLA.FirstResponse, now), h.clock("Conclusion", rec.SLA.Conclusion, now)}
	for _, m := range rec.Messages {
		mv := messageView{Author: m.Author.Name(), At: h.timeText(m.At), Text: m.Text, Internal: m.Internal}
		switch {
		case m.Internal:
			mv.Side, mv.Class = "Internal note · experts only", "msg-internal"
		case m.Side == casework.SideExpert:
			mv.Side, mv.Class = "Threat expert", "msg-expert"
		default:
			mv.Side, mv.Class = "Requester side · "+v.Org, "msg-requester"
		}
		v.Messages = append(v.Messages, mv)
	}
	for _, smp := range smps {
		sv := sampleView{ID: smp.ID, Name: smp.Name, Size: casework.FormatBytes(smp.Size), SHA256: smp.SHA256, SHA1: smp.SHA1, MD5: smp.MD5,
			From: smp.Uploader.Name(), At: h.timeText(smp.CreatedAt), Match: smp.MatchText, Side: string(smp.Side)}
		if smp.DeletedAt != nil {
			sv.Deleted = "deleted " + h.timeText(*smp.DeletedAt)
		}
		v.Samples = append(v.Samples, sv)
	}
	h.renderTracker(w, http.StatusOK, "case", h.nav(s, ""), v)
}

// serveSampleDownload is POST /web/cases/{ref}/download (field sample, the
// sample id): an expert's download, through a fresh download link issued
// to them and recorded on the timeline, which the browser is sent to.
func (h *Handler) serveSampleDownload(w http.ResponseWriter, r *http.Request, s *session) {
	if r.Method != http.MethodPost {
		h.methodNotAllowed(w, r, "POST")
		return
	}
	ref := r.PathValue("ref")
	id, err := strconv.ParseInt(r.PostForm.Get("sample"), 10, 64)
	if _, rerr := casework.ParseRef(ref); rerr != nil || err != nil || id <= 0 || !s.expert() {
		// Members and managers get what a missing sample gets.
		h.notFound(w, r, s)
		return
	}
	dl, err := h.cfg.Cases.IssueDownloadLink(r.Context(), ref, id, s.actor())
	if err != nil {
		h.trackerError(w, r, s, "issue a download link", err)
		return
	}
	secureHeaders(w.Header(), strictCSP)
	http.Redirect(w, r, h.cfg.Links.page(DownloadPath+url.PathEscape(dl.Token)), http.StatusSeeOther)
}
