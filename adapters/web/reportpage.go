package web

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/plural"
)

// The report page: the figures of "/experts report" (casework.Report) for
// a chosen calendar period and org, with charts drawn on the server.

// maxPeriodsBack bounds how far back the report page goes.
const maxPeriodsBack = 40

// reportChoice is the report page's query: period length, how many periods
// back from the current one, and the org ("" every org the session sees).
type reportChoice struct {
	Period casework.Period
	Back   int
	Org    string
}

func (h *Handler) readReportChoice(s *session, q url.Values) (reportChoice, error) {
	p, err := casework.ParsePeriod(q.Get("period"))
	if err != nil {
		return reportChoice{}, errors.New("the period " + strconv.Quote(q.Get("period")) + " is not week, month or quarter")
	}
	c := reportChoice{Period: p, Org: q.Get("org")}
	if b := q.Get("back"); b != "" {
		n, err := strconv.Atoi(b)
		if err != nil || n < 0 || n > maxPeriodsBack {
			return c, fmt.Errorf("%q is not a number of periods back from 0 to %d", b, maxPeriodsBack)
		}
		c.Back = n
	}
	if c.Org != "" && !slices.ContainsFunc(h.orgs(s), func(o bot.WebOrg) bool { return o.ID == c.Org }) {
		return c, errors.New("there is no org " + strconv.Quote(c.Org) + " to choose")
	}
	return c, nil
}

func (c reportChoice) query(back int) string {
	q := url.Values{}
	if c.Period != casework.PeriodQuarter {
		q.Set("period", string(c.Period))
	}
	if back > 0 {
		q.Set("back", strconv.Itoa(back))
	}
	if c.Org != "" {
		q.Set("org", c.Org)
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

// at is a moment in the chosen period: the start of the current one moved
// back c.Back periods.
func (c reportChoice) at(now time.Time, loc *time.Location) time.Time {
	if c.Back == 0 {
		return time.Time{}
	}
	t := now.In(loc)
	y, m, d := t.Date()
	switch c.Period {
	case casework.PeriodWeek:
		monday := time.Date(y, m, d-(int(t.Weekday())+6)%7, 0, 0, 0, 0, loc)
		return monday.AddDate(0, 0, -7*c.Back)
	case casework.PeriodMonth:
		return time.Date(y, m-time.Month(c.Back), 1, 0, 0, 0, 0, loc)
	}
	q := time.Month((int(m)-1)/3*3 + 1)
	return time.Date(y, q-time.Month(3*c.Back), 1, 0, 0, 0, 0, loc)
}

// figureRow is one row of the report's table of figures per org.
type figureRow struct {
	Org, Opened, FirstResponse, Conclusion, WithinSLA, Breaches, Credits, Notifications string
	Total                                                                               bool
}

// breachView is one listed breach.
type breachView struct {
	Ref, URL, Org, Priority, Clock, Elapsed, Target, Status, Assignee string
}

// reportView is the data of report.html.
type reportView struct {
	Action, CSRF       string
	Periods, Orgs      []option
	Title, Range, Note string
	PrevURL, NextURL   string
	PrevLabel          string
	NextLabel          string
	Opened             int
	ByKind, ByPriority []option // Label: name, Value: count
	Figures            []figureRow
	Breaches           []breachView
	BreachMore         int
	Weekly             chart
	FirstResponse      chart
	Conclusion         chart
	Credits            chart
	Weeks              []weekBar
}

// plural is "1 case", "2 cases".
func shareText(s casework.SLAFigures) string {
	if !s.HasShare {
		return "—"
	}
	return plural.Percent(s.Within, s.Decided) + " of " + strconv.Itoa(s.Decided)
}

func statsText(d casework.DurationStats) string {
	if d.Count == 0 {
		return "—"
	}
	return durationText(d.Median) + " / " + durationText(d.P90)
}

// serveReport is the report page: GET shows it; POST (its form) redirects
// to the page with the period and org chosen.
func (h *Handler) serveReport(w http.ResponseWriter, r *http.Request, s *session) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		c, err := h.readReportChoice(s, r.PostForm)
		if err != nil {
			h.renderTracker(w, http.StatusBadRequest, "message", h.nav(s, "report"), message{Title: "That report does not exist", Lines: []string{err.Error() + "."}})
			return
		}
		c.Back = 0
		http.Redirect(w, r, h.cfg.Links.page(reportPath)+c.query(0), http.StatusSeeOther)
		return
	default:
		h.methodNotAllowed(w, r, "GET, POST")
		return
	}
	c, err := h.readReportChoice(s, r.URL.Query())
	if err != nil {
		h.renderTracker(w, http.StatusBadRequest, "message", h.nav(s, "report"), message{Title: "That report does not exist", Lines: []string{err.Error() + "."}})
		return
	}
	loc := h.cfg.Location
	rep, err := h.cfg.Cases.Report(r.Context(), s.viewer(), casework.ReportRequest{Org: c.Org, Period: c.Period, Location: loc,
		At: c.at(h.cfg.Now(), loc)})
	if err != nil {
		h.trackerError(w, r, s, "make the report", err)
		return
	}
	h.renderTracker(w, http.StatusOK, "report", h.nav(s, "report"), h.reportView(s, c, rep))
}

// periodTitle names a report's period: "Q1 2026", "February 2026", "Week of 9 Feb 2026".
func periodTitle(rep *casework.Report) string {
	switch rep.Period {
	case casework.PeriodWeek:
		return "Week of " + rep.From.Format("2 Jan 2006")
	case casework.PeriodMonth:
		return rep.From.Format("January 2006")
	}
	return fmt.Sprintf("Q%d %d", (int(rep.From.Month())-1)/3+1, rep.From.Year())
}

func (h *Handler) reportView(s *session, c reportChoice, rep *casework.Report) reportView {
	v := reportView{Action: h.cfg.Links.page(reportPath), CSRF: s.csrf}
	for _, p := range []casework.Period{casework.PeriodWeek, casework.PeriodMonth, casework.PeriodQuarter} {
		v.Periods = append(v.Periods, option{Value: string(p), Label: map[casework.Period]string{
			casework.PeriodWeek: "Week", casework.PeriodMonth: "Month", casework.PeriodQuarter: "Quarter"}[p], Selected: p == c.Period})
	}
	if orgs := h.orgs(s); len(orgs) > 0 {
		v.Orgs = append(v.Orgs, option{Value: "", Label: "All orgs", Selected: c.Org == ""})
		for _, o := range orgs {
			v.Orgs = append(v.Orgs, option{Value: o.ID, Label: o.Name, Selected: o.ID == c.Org})
		}
	}
	scope := "all orgs"
	switch {
	case c.Org != "":
		scope = h.orgName(s, c.Org)
	case !s.allOrgs():
		scope = s.orgName
	}
	v.Title = periodTitle(rep) + " · " + scope
	last := rep.To.Add(-time.Nanosecond)
	v.Range = rep.From.Format("2 Jan 2006") + " – " + last.Format("2 Jan 2006") + " (" + rep.TimeZone + ")"
	if !rep.Complete {
		v.Range += ", so far"
	}
	word := string(c.Period)
	if c.Back < maxPeriodsBack {
		v.PrevURL, v.PrevLabel = h.cfg.Links.page(reportPath)+c.query(c.Back+1), "← previous "+word
	}
	if c.Back > 0 {
		v.NextURL, v.NextLabel = h.cfg.Links.page(reportPath)+c.query(c.Back-1), "next "+word+" →"
	}
	tot := rep.Total
	v.Opened = tot.Opened.Total
	for _, k := range []casework.SubjectKind{casework.SubjectAlert, casework.SubjectDevice, casework.SubjectFile, casework.SubjectIncident,
		casework.SubjectIP, casework.SubjectURL, casework.SubjectActor, casework.SubjectNone} {
		name := string(k)
		switch k {
		case casework.SubjectNone:
			name = "general question"
		case casework.SubjectIP:
			name = "IP address"
		case casework.SubjectURL:
			name = "URL or domain"
		}
		v.ByKind = append(v.ByKind, option{Label: name, Value: strconv.Itoa(tot.Opened.ByKind[k])})
	}
	for _, p := range []casework.Priority{casework.PriorityHigh, casework.PriorityMedium, casework.PriorityLow} {
		v.ByPriority = append(v.ByPriority, option{Label: string(p), Value: strconv.Itoa(tot.Opened.ByPriority[p])})
	}
	row := func(label string, o casework.OrgReport, total bool) figureRow {
		n := o.Notifications
		notif := fmt.Sprintf("%d posted, %d acknowledged", n.Posted, n.Acknowledged)
		if n.Acknowledged > 0 {
			notif += ", median " + durationText(n.MedianToAck)
		}
		return figureRow{Org: label, Opened: strconv.Itoa(o.Opened.Total), FirstResponse: statsText(o.FirstResponse),
			Conclusion: statsText(o.Conclusion), WithinSLA: shareText(o.SLA), Breaches: strconv.Itoa(o.SLA.BreachCount),
			Credits: fmt.Sprintf("%d used, %d left", o.Credits.Used, o.Credits.Left), Notifications: notif, Total: total}
	}
	var durFirst, durConcl []durationRow
	var credits []creditRow
	for _, o := range rep.Orgs {
		name := h.orgName(s, o.Org)
		v.Figures = append(v.Figures, row(name, o, false))
		durFirst = append(durFirst, durationRow{Label: name, Count: o.FirstResponse.Count, Median: o.FirstResponse.Median, P90: o.FirstResponse.P90})
		durConcl = append(durConcl, durationRow{Label: name, Count: o.Conclusion.Count, Median: o.Conclusion.Median, P90: o.Conclusion.P90})
		credits = append(credits, creditRow{Label: name, Used: o.Credits.Used, Left: o.Credits.Left})
	}
	if len(rep.Orgs) > 1 {
		v.Figures = append(v.Figures, row("All orgs", tot, true))
		durFirst = append(durFirst, durationRow{Label: "All orgs", Count: tot.FirstResponse.Count, Median: tot.FirstResponse.Median, P90: tot.FirstResponse.P90})
		durConcl = append(durConcl, durationRow{Label: "All orgs", Count: tot.Conclusion.Count, Median: tot.Conclusion.Median, P90: tot.Conclusion.P90})
	}
	for _, b := range tot.SLA.Breaches {
		clock := "first response"
		if b.Clock == casework.ClockConclusion {
			clock = "conclusion"
		}
		v.Breaches = append(v.Breaches, breachView{Ref: b.Ref, URL: h.cfg.Links.page(casePath + url.PathEscape(b.Ref)), Org: h.orgName(s, b.Org),
			Priority: string(b.Priority), Clock: clock, Elapsed: durationText(b.Elapsed), Target: durationText(b.Target),
			Status: statusLabel(b.Status), Assignee: cmp.Or(b.Assignee, "—")})
	}
	v.BreachMore = tot.SLA.BreachCount - len(tot.SLA.Breaches)
	for _, wk := range tot.Opened.ByWeek {
		start := wk.Start.In(h.cfg.Location)
		v.Weeks = append(v.Weeks, weekBar{Label: start.Format("2 Jan"), Count: wk.Count,
			Tip: fmt.Sprintf("Week of %s: %s opened", start.Format("2 Jan 2006"), plural.Count(wk.Count, "case", "cases"))})
	}
	sla := h.cfg.Cases.Config().SLA
	var first, concl []target
	for _, p := range []casework.Priority{casework.PriorityHigh, casework.PriorityMedium, casework.PriorityLow} {
		t := sla.Target(p)
		first = append(first, target{Label: string(p), D: t.FirstResponse})
		concl = append(concl, target{Label: string(p), D: t.Conclusion})
	}
	slices.SortStableFunc(first, func(a, b target) int { return cmp.Compare(a.D, b.D) })
	slices.SortStableFunc(concl, func(a, b target) int { return cmp.Compare(a.D, b.D) })
	v.Weekly = weeklyChart("Cases opened per week, "+v.Title, v.Weeks)
	v.FirstResponse = durationChart("Time to first response against the SLA targets, "+v.Title, durFirst, first)
	v.Conclusion = durationChart("Time to conclusion against the SLA targets, "+v.Title, durConcl, concl)
	v.Credits = creditsChart("Credits used per org, "+v.Title, credits)
	v.Note = "Times are SLA clock time (pauses while waiting on the requester excluded): median / 90th percentile. " +
		"Within SLA: concluded cases that met both targets, of the cases concluded or past a target."
	return v
}
