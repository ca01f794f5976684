package bot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/threatdesk/threatdesk/internal/plural"
	"strconv"
	"strings"
	"time"
)

// Managers and auditors (issue 16): "/experts report [org]
// [week|month|quarter]", "cases search <words | hash | host | @user |
// EOD-n>", the More button of lists, "export <EOD-n>", "verify <EOD-n>" and
// the rendering of the weekly digest. Scoped as "cases" and "status" are:
// a member sees their own org only, experts and managers every org, and
// what a member may not see is answered exactly as what does not exist.

// Verbs of this file.
const (
	vReport = "report"
	vExport = "export"
	vVerify = "verify"
)

// ActMore is the More button of a case list or search: its value is an
// opaque page token (pages.go).
const ActMore ActionID = "more"

// hintReport and hintSearch are shown with bad input.
const (
	hintReport = "Usage: /experts report [org] [week|month|quarter] (the quarter so far by default)"
	hintSearch = "Usage: /experts cases search <words | hash | host | @user | EOD-n>, e.g. /experts cases search mimikatz"
)

// parseReport reads "report [org] [week|month|quarter]", in either order.
func parseReport(c Command, args []string, typed bool, r *request) *usageError {
	if typed {
		r.org, r.period = strings.ToLower(opt(c, "org")), strings.ToLower(opt(c, "period"))
	} else {
		for _, a := range args {
			la := strings.ToLower(a)
			if p, ok := periodWords[la]; ok {
				la = p // "weekly" is no org
			}
			switch {
			case la == PeriodWeek || la == PeriodMonth || la == PeriodQuarter:
				if r.period != "" {
					return badInput("Give one period: week, month or quarter. %s.", hintReport)
				}
				r.period = la
			case r.org == "" && orgIDPattern.MatchString(strings.TrimPrefix(la, "org:")):
				r.org = strings.TrimPrefix(la, "org:")
			default:
				return badInput("%q is neither a period (week, month, quarter) nor an org id. %s.", a, hintReport)
			}
		}
	}
	if p, ok := periodWords[r.period]; ok {
		r.period = p
	}
	switch r.period {
	case "", PeriodWeek, PeriodMonth, PeriodQuarter:
	default:
		return badInput("%q is not a period: use week, month or quarter. %s.", r.period, hintReport)
	}
	return nil
}

// parseCasesSearch reads "cases search <text>" (Discord: the cases
// subcommand's search option); ok is false for any other "cases".
func parseCasesSearch(c Command, args []string, typed bool, r *request) (bool, *usageError) {
	if typed {
		s, has := c.Options["search"]
		if !has {
			return false, nil
		}
		r.search, r.org = strings.TrimSpace(s), strings.ToLower(opt(c, "org"))
	} else {
		if len(args) == 0 || !strings.EqualFold(args[0], "search") {
			return false, nil
		}
		r.search = searchText(c, args[1:])
	}
	if r.search == "" {
		return true, badInput("What should I look for? %s.", hintSearch)
	}
	return true, nil
}

// searchText is what was typed after "search". A mention the adapter
// resolved (Slack: "<@U123|alice>" reads "@alice" but is the argument
// "U123") searches by the user's id.
func searchText(c Command, words []string) string {
	text := strings.TrimSpace(c.Text)
	if len(text) >= len("search") && strings.EqualFold(text[:len("search")], "search") {
		text = strings.TrimSpace(text[len("search"):])
	} else {
		text = strings.Join(words, " ")
	}
	if len(words) == 1 && strings.HasPrefix(text, "@") {
		if id, ok := normUser(c.User.Platform, words[0]); ok {
			return "@" + id
		}
	}
	return text
}

// ---- report ----

func (b *Bot) runReport(ctx context.Context, w who, r request) (Message, error) {
	rp, err := b.reports()
	if err != nil {
		return Message{}, err
	}
	s, _ := w.scope()
	org := r.org
	switch {
	case !s.All && org != "" && org != s.Org:
		// The same words for another org and a made-up one: members do not
		// learn which orgs exist.
		return Message{}, &usageError{msg: fmt.Sprintf("%q is not an org you can report on here: /experts report in this channel shows %s's figures.", org, b.orgName(s.Org))}
	case s.All && org != "":
		if _, ok := b.cfg.org(org); !ok {
			return Message{}, &usageError{msg: fmt.Sprintf("%q is not an org: the org ids are %s.", org, b.orgIDs())}
		}
	}
	rep, err := rp.Report(ctx, s, ReportQuery{Org: org, Period: r.period, Location: b.cfg.Reports.Location})
	if err != nil {
		return Message{}, err
	}
	if len(rep.Orgs) == 1 {
		return b.orgReportMessage(rep, rep.Orgs[0], "Service report"), nil
	}
	return b.allOrgsReportMessage(rep), nil
}

// orgReportMessage is one org's report in full: the weekly digest posts one
// per org.
func (b *Bot) orgReportMessage(rep ReportView, o OrgFigures, kind string) Message {
	name := b.orgName(o.Org)
	m := Message{
		Title:    cut(kind+" · "+name+" · "+periodLabel(rep), maxTitleRunes),
		Text:     []Line{{T(periodRange(rep))}},
		Fields:   figureFields(o),
		Footer:   Line{T(reportFootnote)},
		Fallback: cut(kind+" for "+name+", "+periodLabel(rep)+": "+plural.Count(o.Opened, "case", "cases")+" opened", maxListLineRunes),
	}
	if sec, ok := breachSection(o.SLA, false, b); ok {
		m.Sections = append(m.Sections, sec)
	}
	return m
}

// reportFootnote says what the figures are.
const reportFootnote = "Figures are for the cases opened in the period, as they stand now. Clock times leave out the time a case waited on the requester."

// orgsPerSection keeps each "By org" section within one Discord embed field.
const orgsPerSection = 5

// allOrgsReportMessage is the report of every org: the total in full, one
// line per org, and the breaches.
func (b *Bot) allOrgsReportMessage(rep ReportView) Message {
	m := Message{
		Title:    cut("Service report · all orgs · "+periodLabel(rep), maxTitleRunes),
		Text:     []Line{{T(periodRange(rep))}},
		Fields:   figureFields(rep.Total),
		Footer:   Line{T(reportFootnote + " /experts report <org> shows one org in full.")},
		Fallback: cut("Service report, "+periodLabel(rep)+": "+plural.Count(rep.Total.Opened, "case", "cases")+" opened", maxListLineRunes),
	}
	for i := 0; i < len(rep.Orgs); i += orgsPerSection {
		sec := Section{Title: "By org"}
		if len(rep.Orgs) > orgsPerSection {
			sec.Title = fmt.Sprintf("By org (%d–%d of %d)", i+1, min(i+orgsPerSection, len(rep.Orgs)), len(rep.Orgs))
		}
		for _, o := range rep.Orgs[i:min(i+orgsPerSection, len(rep.Orgs))] {
			sec.Lines = append(sec.Lines, b.orgLine(o))
		}
		m.Sections = append(m.Sections, sec)
	}
	if sec, ok := breachSection(rep.Total.SLA, true, b); ok {
		m.Sections = append(m.Sections, sec)
	}
	return m
}

// orgLine is one org's figures on one line.
func (b *Bot) orgLine(o OrgFigures) Line {
	parts := []string{plural.Count(o.Opened, "case", "cases") + " opened"}
	if o.FirstResponse.Count > 0 {
		parts = append(parts, "first response "+durationWords(o.FirstResponse.Median)+" (median)")
	}
	if o.SLA.HasShare {
		parts = append(parts, plural.Percent(o.SLA.Within, o.SLA.Decided)+" within SLA")
	}
	parts = append(parts, plural.Count(o.SLA.BreachCount, "breach", "breaches"),
		fmt.Sprintf("credits %d used, %d left", o.CreditsUsed, o.CreditsLeft),
		plural.Count(o.Posted, "notification", "notifications"))
	return Line{B(b.orgName(o.Org)), T(": " + strings.Join(parts, " · "))}
}

// figureFields are an org's (or the total's) figures, one field each.
func figureFields(o OrgFigures) []Field {
	field := func(label, value string) Field { return Field{Label: label, Value: Line{T(value)}} }
	return []Field{
		field("Cases opened", strconv.Itoa(o.Opened)),
		field("By subject", kindsText(o.ByKind)),
		field("By priority", counted([]string{"high", "medium", "low"}, o.ByPriority)),
		field("First response", durationStats(o.FirstResponse, "no answer yet")),
		field("Conclusion", durationStats(o.Conclusion, "none concluded yet")),
		field("Within SLA", slaShare(o.SLA)),
		field("SLA breaches", breachCount(o.SLA)),
		field("Credits", fmt.Sprintf("%d used · %d left", o.CreditsUsed, o.CreditsLeft)),
		field("Notifications", notifications(o)),
	}
}

// kindLabels name subject kinds in the report, in the order shown.
var kindLabels = []struct {
	kind  SubjectKind
	label string
}{{SubjectAlert, "alert"}, {SubjectDevice, "device"}, {SubjectFile, "file"}, {SubjectIncident, "incident"},
	{SubjectIP, "address"}, {SubjectURL, "url"}, {SubjectActor, "actor"}, {SubjectNone, "general"}}

func kindsText(by map[SubjectKind]int) string {
	var out []string
	for _, k := range kindLabels {
		if n := by[k.kind]; n > 0 {
			out = append(out, k.label+" "+strconv.Itoa(n))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " · ")
}

// counted lists the non-zero counts of keys, in order ("high 3 · low 2").
func counted(keys []string, by map[string]int) string {
	var out []string
	for _, k := range keys {
		if n := by[k]; n > 0 {
			out = append(out, k+" "+strconv.Itoa(n))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " · ")
}

func durationStats(d DurationFigures, none string) string {
	if d.Count == 0 {
		return none
	}
	return "median " + durationWords(d.Median) + " · 90th percentile " + durationWords(d.P90) + " (" + plural.Count(d.Count, "case", "cases") + ")"
}

func slaShare(s SLAFigures) string {
	out := "nothing decided yet"
	if s.HasShare {
		out = fmt.Sprintf("%s (%d of %d decided)", plural.Percent(s.Within, s.Decided), s.Within, s.Decided)
	}
	if s.Pending > 0 {
		out += " · " + strconv.Itoa(s.Pending) + " open on time"
	}
	if s.Excluded > 0 {
		out += " · " + strconv.Itoa(s.Excluded) + " withdrawn"
	}
	return out
}

func breachCount(s SLAFigures) string {
	if s.BreachCount == 0 {
		return "none"
	}
	return fmt.Sprintf("%s missed by %s", plural.Count(s.BreachCount, "target", "targets"), plural.Count(s.Breached, "case", "cases"))
}

func notifications(o OrgFigures) string {
	if o.Posted == 0 {
		return "none posted"
	}
	out := fmt.Sprintf("%d posted · %d acknowledged", o.Posted, o.Acknowledged)
	if o.Acknowledged > 0 {
		out += " · median " + durationWords(o.MedianToAck) + " to acknowledge"
	}
	return out
}

// maxBreachLines bounds the breaches listed in a report message.
const maxBreachLines = 10

// breachSection lists the missed targets, newest case first.
func breachSection(s SLAFigures, withOrg bool, b *Bot) (Section, bool) {
	if s.BreachCount == 0 {
		return Section{}, false
	}
	sec := Section{Title: fmt.Sprintf("SLA breaches (%d)", s.BreachCount)}
	for _, x := range s.Breaches {
		if len(sec.Lines) == maxBreachLines {
			break
		}
		clock := "conclusion"
		if x.FirstResponse {
			clock = "first response"
		}
		l := Line{{Text: x.Ref, Style: StyleCode}, T(" ")}
		if withOrg {
			l = append(l, T(b.orgName(x.Org)+" · "))
		}
		l = append(l, T(fmt.Sprintf("%s (%s priority): %s against a target of %s · now %s", clock, x.Priority,
			durationWords(x.Elapsed), durationWords(x.Target), strings.ToLower(x.Status.label()))))
		sec.Lines = append(sec.Lines, l)
	}
	sec.More = s.BreachCount - len(sec.Lines)
	return sec, true
}

// periodLabel names a report's period: "Q1 2026 so far", "February 2026",
// "week of 2 February 2026".
func periodLabel(rep ReportView) string {
	f := rep.From
	var s string
	switch rep.Period {
	case PeriodWeek:
		s = "week of " + f.Format("2 January 2006")
	case PeriodMonth:
		s = f.Format("January 2006")
	default:
		s = fmt.Sprintf("Q%d %d", (int(f.Month())-1)/3+1, f.Year())
	}
	if !rep.Complete {
		s += " so far"
	}
	return s
}

// periodRange is the period's first and last day in words, and its zone.
func periodRange(rep ReportView) string {
	last := rep.End.Add(-time.Nanosecond)
	so := ""
	if !rep.Complete {
		last, so = rep.To, " (so far)"
	}
	from := rep.From.Format("2 January 2006")
	switch {
	case rep.From.Year() == last.Year() && rep.From.Month() == last.Month():
		from = rep.From.Format("2")
	case rep.From.Year() == last.Year():
		from = rep.From.Format("2 January")
	}
	return "From " + from + " to " + last.Format("2 January 2006") + so + ", calendar days in " + cmp.Or(rep.TimeZone, "UTC") + "."
}

// durationWords says a duration in words, to the precision that matters:
// "45 seconds", "12 minutes 30 seconds", "2 hours 30 minutes", "3 days 4
// hours".
func durationWords(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	g := time.Second
	switch {
	case d >= 24*time.Hour:
		g = time.Hour
	case d >= time.Hour:
		g = time.Minute
	}
	d = d.Round(g)
	unit := func(n int64, one, many string) string { return plural.Count(int(n), one, many) }
	two := func(a, b string, bn int64) string {
		if bn == 0 {
			return a
		}
		return a + " " + b
	}
	switch {
	case d >= 24*time.Hour:
		days, hours := int64(d/(24*time.Hour)), int64(d%(24*time.Hour)/time.Hour)
		return two(unit(days, "day", "days"), unit(hours, "hour", "hours"), hours)
	case d >= time.Hour:
		hours, minutes := int64(d/time.Hour), int64(d%time.Hour/time.Minute)
		return two(unit(hours, "hour", "hours"), unit(minutes, "minute", "minutes"), minutes)
	case d >= time.Minute:
		minutes, seconds := int64(d/time.Minute), int64(d%time.Minute/time.Second)
		return two(unit(minutes, "minute", "minutes"), unit(seconds, "second", "seconds"), seconds)
	}
	return unit(int64(d/time.Second), "second", "seconds")
}

// ---- lists, searches and More ----

// casesFirstPage shows the first page of a case list.
func (b *Bot) casesFirstPage(ctx context.Context, w who, p Platform, s Scope, f CaseFilter, title string) (Message, error) {
	return b.showPage(ctx, w, p, pageQuery{Kind: pageList, Title: title, Scope: s, Filter: f, ShowOrg: s.All})
}

// searchCases runs "cases search".
func (b *Bot) searchCases(ctx context.Context, w who, p Platform, r request) (Message, error) {
	s, _ := w.scope()
	q := SearchQuery{Text: r.search, Internal: w.has(RoleExpert)}
	title := "Case search"
	if r.org != "" {
		if !s.All {
			return Message{}, &usageError{msg: fmt.Sprintf("%q: only experts and managers choose an org; your searches cover %s's cases.", r.org, b.orgName(s.Org))}
		}
		if _, ok := b.cfg.org(r.org); !ok {
			return Message{}, &usageError{msg: fmt.Sprintf("%q is not an org: the org ids are %s.", r.org, b.orgIDs())}
		}
		q.Org = r.org
		title += " · " + b.orgName(r.org)
	}
	return b.showPage(ctx, w, p, pageQuery{Kind: pageSearch, Title: title, Scope: s, Search: q, ShowOrg: s.All && q.Org == ""})
}

// morePage answers a More press: the next page of the list the token names.
func (b *Bot) morePage(ctx context.Context, w who, a Action) (*Message, error) {
	q, err := b.loadPage(ctx, a.User.Platform, w, a.Value)
	if err != nil {
		return nil, err
	}
	m, err := b.showPage(ctx, w, a.User.Platform, q)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// showPage reads one page of q and renders it, with a More button carrying
// a new page token when more cases match.
func (b *Bot) showPage(ctx context.Context, w who, p Platform, q pageQuery) (Message, error) {
	rp, err := b.reports()
	if err != nil {
		return Message{}, err
	}
	var cases []CaseView
	var next string
	total := -1
	switch q.Kind {
	case pageList:
		f := q.Filter
		f.Limit = maxListed
		pg, err := rp.ListPage(ctx, q.Scope, f, q.Cursor)
		if err != nil {
			return Message{}, err
		}
		cases, next, total = pg.Cases, pg.Next, pg.Total
	case pageSearch:
		sq := q.Search
		sq.Limit, sq.Cursor = maxListed, q.Cursor
		pg, err := rp.Search(ctx, q.Scope, sq)
		if err != nil {
			return Message{}, err
		}
		cases = pg.Cases
		if pg.More {
			next = pg.Next
		}
	default:
		return Message{}, errPageGone
	}
	m := b.pageMessage(q, cases, total, next != "")
	if next != "" {
		nq := q
		nq.Cursor, nq.Shown = next, q.Shown+len(cases)
		tok, err := b.savePage(ctx, p, pageScope(w, q.Kind == pageSearch), nq)
		if err != nil {
			return Message{}, err
		}
		m.Buttons = append(m.Buttons, Button{Action: ActMore, Label: "More", Value: tok, Style: ButtonPrimary})
	}
	return m, nil
}

// pageMessage renders one page; total is -1 when unknown (searches).
func (b *Bot) pageMessage(q pageQuery, cases []CaseView, total int, more bool) Message {
	m := b.listMessage(q.Title, CaseList{Cases: cases}, q.ShowOrg)
	if q.Kind == pageSearch {
		if len(cases) == 0 {
			m.Text = []Line{{T("No case you can see matches "), U(q.Search.Text), T(".")}}
		} else {
			m.Text = []Line{{T("Cases matching "), U(q.Search.Text), T(", newest first:")}}
		}
	}
	if len(cases) == 0 {
		return m
	}
	from, to := q.Shown+1, q.Shown+len(cases)
	footer := fmt.Sprintf("Cases %d–%d", from, to)
	switch {
	case total >= 0:
		footer += fmt.Sprintf(" of %d", total)
	case more:
		footer += " · more match"
	}
	if more {
		footer += " · More shows the next " + strconv.Itoa(maxListed)
	}
	m.Footer = Line{T(footer)}
	return m
}

// ---- export and verify ----

func (b *Bot) runExport(ctx context.Context, w who, c Command, r request) (Message, error) {
	rp, err := b.reports()
	if err != nil {
		return Message{}, err
	}
	fr, ok := c.Respond.(FileResponder)
	if !ok {
		return Message{}, &Refusal{Msg: "threatdesk cannot hand you files from here. Run /experts export again in a channel of your organisation or the desk."}
	}
	s, _ := w.scope()
	rec, err := rp.Export(ctx, s, r.ref, w.has(RoleExpert), b.cfg.Reports.Location)
	if err != nil {
		return Message{}, err
	}
	where, err := fr.RespondFiles(ctx, exportMessage(rec), rec.Files)
	if err != nil {
		return Message{}, fmt.Errorf("hand over the record of %s: %w", rec.Ref, err)
	}
	if where == "" {
		return Message{}, errAnswered
	}
	return textMessage(fmt.Sprintf("Sent you the record of %s %s: %s.", rec.Ref, where, fileNames(rec.Files))), nil
}

func fileNames(fs []Document) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return strings.Join(names, " and ")
}

// exportMessage goes with the record's files.
func exportMessage(rec CaseRecord) Message {
	internal := "not included"
	if rec.Internal {
		internal = "included"
	}
	return Message{
		Title: rec.Ref + " · case record",
		Text: []Line{{T("The full record of " + rec.Ref + ": what it is about, the question, every message with its author and side, " +
			"the statuses with their times, the SLA figures, and the timeline with each entry's hash.")}},
		Fields: []Field{
			{Label: "Files", Value: Line{T(fileNames(rec.Files))}},
			{Label: "Timeline", Value: Line{T(rec.Verification)}},
			{Label: "Internal expert notes", Value: Line{T(internal)}},
		},
		Footer:   Line{T("Exported for you alone. Keep it as your organisation keeps incident records.")},
		Fallback: rec.Ref + " case record: " + fileNames(rec.Files),
	}
}

func (b *Bot) runVerify(ctx context.Context, w who, r request) (Message, error) {
	rp, err := b.reports()
	if err != nil {
		return Message{}, err
	}
	s, _ := w.scope()
	v, err := rp.Verify(ctx, s, r.ref)
	if err != nil {
		return Message{}, err
	}
	head := "Timeline intact"
	if !v.Intact {
		head = "Timeline does NOT verify"
	}
	return Message{Text: []Line{{B(head + ": "), T(v.Sentence)}}, Fallback: cut(v.Sentence, maxListLineRunes)}, nil
}

// ---- the weekly digest ----

// renderDigest renders the digest event: each org's report of the week,
// one message each, to the managers' channel.
func (b *Bot) renderDigest(ctx context.Context, q ReportQuery) ([]part, error) {
	d := b.cfg.Reports.Digest
	if d == nil {
		// Queued by a replica that has it (a rolling deploy adding it): left
		// for that one, or this one restarted with it, rather than marked
		// delivered with nothing posted.
		return nil, errors.New("weekly digest: reports.digest is not configured on this replica; it is tried again until one that has it posts it")
	}
	rp, err := b.reports()
	if err != nil {
		return nil, &rowError{kind: Permanent, err: err}
	}
	rep, err := rp.Report(ctx, Scope{All: true}, q)
	if err != nil {
		return nil, fmt.Errorf("weekly digest: %w", err)
	}
	dest := d.Dest()
	parts := make([]part, 0, len(rep.Orgs))
	for _, o := range rep.Orgs {
		parts = append(parts, part{key: "digest." + o.Org, dest: dest, msg: b.orgReportMessage(rep, o, "Weekly digest")})
	}
	return parts, nil
}

// periodWords are other ways of naming a period, read as it.
var periodWords = map[string]string{
	"weekly": PeriodWeek, "monthly": PeriodMonth, "quarterly": PeriodQuarter,
	"weeks": PeriodWeek, "months": PeriodMonth, "quarters": PeriodQuarter,
}
