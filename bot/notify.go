package bot

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Telling the right person (README.md, "On call"): who a case event
// mentions and who gets a direct message, decided when the event is
// rendered, from the case as it is then and from the config and the
// rotation in force then, so that someone who left the rotation or the
// config is never pinged again.
//
//   - New case: the desk card names the on-call expert (a mention); a
//     high-priority case also sends them a direct message with a link.
//   - Nobody took it (CasePaged): the next expert on the rotation and the
//     managers get a direct message; the desk thread says so.
//   - Assigned by someone else: the assignee gets a direct message; both
//     threads say who assigned whom.
//   - Waiting on the requester: the note in the requester's thread
//     mentions them, and so does the reminder (CaseReminded).
//   - SLA warning: mentions the assignee, or the on-call expert while
//     nobody has the case. Breach: the managers get a direct message.

// M is a trusted mention of userID (a user id on the platform the message
// goes to), shown as name where a mention cannot be. It notifies the user
// only when the message lists them in Mentions.
func M(userID, name string) Span { return Span{Text: cmp.Or(name, userID), Mention: userID} }

// duration says d in words, rounded: "under a minute", "15 min",
// "1 h 5 min", "2 d 3 h".
func duration(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute-time.Second/2:
		return "under a minute"
	case d < time.Hour-time.Minute/2:
		return strconv.Itoa(int(d.Round(time.Minute)/time.Minute)) + " min"
	case d < 48*time.Hour-time.Minute/2:
		d = d.Round(time.Minute)
		s := strconv.Itoa(int(d/time.Hour)) + " h"
		if m := int(d%time.Hour) / int(time.Minute); m > 0 {
			s += " " + strconv.Itoa(m) + " min"
		}
		return s
	}
	d = d.Round(time.Hour)
	s := strconv.Itoa(int(d/(24*time.Hour))) + " d"
	if h := int(d%(24*time.Hour)) / int(time.Hour); h > 0 {
		s += " " + strconv.Itoa(h) + " h"
	}
	return s
}

// zoned is t in loc with the zone's name: "Mon 9 Mar 09:00 Europe/London".
func zoned(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("Mon 2 Jan 15:04") + " " + loc.String()
}

// when is t as a span: in the configured time zone, named, and on Slack
// in each reader's own.
func (b *Bot) when(t time.Time) Span { return Span{Text: zoned(t, b.cfg.Location), Time: t} }

// nameOf is a user's display name, or their id when the platform cannot
// say.
func (b *Bot) nameOf(ctx context.Context, p Platform, workspace, id string) string {
	if a, ok := b.adapter(p); ok {
		if n, err := a.UserName(ctx, workspace, id); err == nil && n != "" {
			return n
		}
	}
	return id
}

// workspaceOf is the workspace the bot knows a platform by: the desk's when
// it is on p, else the first org's.
func (b *Bot) workspaceOf(p Platform) string {
	if d := b.cfg.Desk.DeskDest(); d.Platform == p {
		return d.Workspace
	}
	for i := range b.cfg.Orgs {
		if pl := b.cfg.Orgs[i].place(p); pl != nil {
			return pl.Workspace
		}
	}
	return ""
}

// someone is a user the bot may mention or message.
type someone struct {
	platform Platform
	id       string
	name     string
}

func (b *Bot) personOf(ctx context.Context, p Platform, id string) someone {
	return someone{platform: p, id: id, name: b.nameOf(ctx, p, b.workspaceOf(p), id)}
}

// on returns a span naming who in a message posted on platform: a mention
// there (and its id, to list in Mentions), or their name.
func (who someone) on(platform Platform) (Span, string) {
	if who.platform == platform && who.id != "" {
		return M(who.id, who.name), who.id
	}
	return B(who.name), ""
}

// dmTo is a direct message part to who.
func (who someone) dm(key string, m Message, linkTo, label string) part {
	return part{key: key, dm: &recipient{platform: who.platform, id: who.id}, msg: m, link: linkTo, linkLabel: label}
}

// mentioning returns m with who mentioned at the start of its first line.
func mentioning(m Message, who someone, platform Platform) Message {
	span, id := who.on(platform)
	if id == "" {
		return m
	}
	out := m
	out.Text = append([]Line{append(Line{span, T(" ")}, first(m.Text)...)}, rest1(m.Text)...)
	out.Mentions = append(append([]string(nil), m.Mentions...), id)
	return out
}

func first(ls []Line) Line {
	if len(ls) == 0 {
		return nil
	}
	return ls[0]
}

func rest1(ls []Line) []Line {
	if len(ls) < 2 {
		return nil
	}
	return ls[1:]
}

// isExpert reports whether u is still one of the configured experts.
func (b *Bot) isExpert(u *User) bool {
	return u != nil && u.ID != "" && b.cfg.Experts.Has(u.Platform, u.ID)
}

// managers are the configured managers, on every platform.
func (b *Bot) managers(ctx context.Context) []someone {
	var out []someone
	for _, id := range b.cfg.Managers.Slack {
		out = append(out, b.personOf(ctx, Slack, id))
	}
	for _, id := range b.cfg.Managers.Discord {
		out = append(out, b.personOf(ctx, Discord, id))
	}
	return distinct(out)
}

// onCallNow is the expert who holds the pager now, when a rotation is
// configured and they are still one of the experts.
func (b *Bot) onCallNow(ctx context.Context) (someone, bool, error) {
	return b.onCallAt(ctx, b.now())
}

// onCallAt is the expert who held the pager at t, when a rotation is
// configured and they are still one of the experts.
func (b *Bot) onCallAt(ctx context.Context, t time.Time) (someone, bool, error) {
	if b.onCall == nil {
		return someone{}, false, nil
	}
	cur, ok, err := b.onCall.Current(ctx, t)
	if err != nil {
		return someone{}, false, fmt.Errorf("who is on call: %w", err)
	}
	m := cur.Member
	if !ok || m.IsZero() || !b.cfg.Experts.Has(m.Platform, m.ID) {
		return someone{}, false, nil
	}
	return b.personOf(ctx, m.Platform, m.ID), true, nil
}

// deskPlatform is the platform of the desk.
func (b *Bot) deskPlatform() Platform { return b.cfg.Desk.DeskDest().Platform }

// receiptPlatform is the platform of a case's receipt.
func (b *Bot) receiptPlatform(c CaseView) Platform {
	if c.Origin.Platform != "" {
		return c.Origin.Platform
	}
	return c.Requester.Platform
}

// deskCardNow is the case's desk card; while the case is new it names the
// expert on call, mentioning them on the desk.
func (b *Bot) deskCardNow(ctx context.Context, c CaseView) (Message, error) {
	m := b.deskCard(c)
	if c.Status != StatusNew {
		return m, nil
	}
	oc, ok, err := b.onCallNow(ctx)
	if err != nil || !ok {
		return m, err
	}
	span, id := oc.on(b.deskPlatform())
	m.Fields = append(m.Fields, Field{Label: "On call", Value: Line{span}})
	if id != "" {
		m.Mentions = append(m.Mentions, id)
	}
	return m, nil
}

// deskLink is the label of the link to a case's desk card.
func deskLink(ref string) string { return "Open " + ref + " on the desk" }

// openedDM is the direct message to the expert on call when the case was
// opened about a new high-priority case, if there is someone to send it
// to. Who was on call then, not when the message goes out: the page, if
// nobody takes it, goes to whoever holds the pager by then unless they
// were told at opening (oncall's PageFor); a delivery delayed past a
// hand-over told the new holder, and the page told them again while the
// next expert heard nothing.
func (b *Bot) openedDM(ctx context.Context, c CaseView) ([]part, error) {
	if c.Priority != "high" {
		return nil, nil
	}
	at := c.OpenedAt
	if at.IsZero() {
		at = b.now()
	}
	oc, ok, err := b.onCallAt(ctx, at)
	if err != nil || !ok {
		return nil, err
	}
	m := Message{
		Text: append([]Line{{B("New high-priority case " + c.Ref), T(" from " + b.orgName(c.Org) + " (" + subjectLabel(c.Subject) + "). You are on call.")}},
			paragraphs(cut(c.Question, 300))...),
		Fallback: "New high-priority case " + c.Ref + ": you are on call",
	}
	return []part{oc.dm("dm.oncall", m, targetDesk, deskLink(c.Ref))}, nil
}

// assignedParts renders an assignment by someone else: both threads say
// who assigned whom, and the assignee gets a direct message.
func (b *Bot) assignedParts(ctx context.Context, c CaseView, ev CaseEvent, cards []part) []part {
	m := note(B(ev.By), T(" assigned "+c.Ref+" to "), B(ev.Actor), T(" (threat expert)."))
	parts := append(cards, part{key: "receipt.note", thread: targetReceipt, msg: m}, part{key: "desk.note", thread: targetDesk, msg: m})
	a := ev.Assignee
	if !b.isExpert(a) || c.Assignee == nil || c.Assignee.ID != a.ID || c.Assignee.Platform != a.Platform {
		return parts // no longer theirs, or no longer an expert: nobody to tell
	}
	dm := Message{
		Text: append([]Line{{B(ev.By), T(" assigned you " + c.Ref + " (" + b.orgName(c.Org) + ", " + c.Priority + " priority). The question:")}},
			paragraphs(cut(c.Question, 600))...),
		Fallback: ev.By + " assigned you " + c.Ref,
	}
	who := someone{platform: a.Platform, id: a.ID, name: userLabel(a)}
	return append(parts, who.dm("dm.assignee", dm, targetDesk, deskLink(c.Ref)))
}

// statusNotes are the notes of a status change in both threads: while the
// case waits on its requester, the one in their thread mentions them.
func (b *Bot) statusNotes(ctx context.Context, c CaseView, ev CaseEvent) []part {
	m := b.statusNote(c, ev)
	receipt := m
	if ev.To.waiting() && c.Status.waiting() {
		receipt = mentioning(m, b.requester(ctx, c), b.receiptPlatform(c))
	}
	ps := []part{{key: "receipt.note", thread: targetReceipt, msg: receipt}, {key: "desk.note", thread: targetDesk, msg: m}}
	ps = append(ps, statusNoteRest(c, ev, "receipt.note", targetReceipt)...)
	return append(ps, statusNoteRest(c, ev, "desk.note", targetDesk)...)
}

// requester is the person who asked c.
func (b *Bot) requester(ctx context.Context, c CaseView) someone {
	r := c.Requester
	name := r.DisplayName
	if name == "" {
		name = b.nameOf(ctx, r.Platform, r.Workspace, r.ID)
	}
	return someone{platform: r.Platform, id: r.ID, name: name}
}

// waitingFor says what a waiting status waits for.
func waitingFor(s Status) string {
	if s == StatusSample {
		return "a file sample"
	}
	return "more information"
}

// remindedParts reminds the requester, once, that an expert waits on them;
// nothing when the case no longer waits.
func (b *Bot) remindedParts(ctx context.Context, c CaseView, ev CaseEvent) []part {
	if !c.Status.waiting() || !c.StatusAt.Equal(ev.Since) {
		return nil // answered meanwhile (waiting again is another wait)
	}
	what := waitingFor(c.Status)
	r := mentioning(Message{
		Text: []Line{
			{T("the threat expert is still waiting for " + what + " on "), B(c.Ref), T(", asked " + duration(ev.Waited) + " ago (")},
			{T("Reply in this thread; the SLA clock stays paused until you do.")},
		},
		Fallback: c.Ref + ": the expert is waiting for " + what,
	}, b.requester(ctx, c), b.receiptPlatform(c))
	r.Text[0] = append(r.Text[0], b.when(ev.Since), T(")."))
	if len(r.Mentions) == 0 {
		// Not mentionable here: say it to them by name.
		r.Text[0] = append(Line{B(c.Requester.DisplayName + ": ")}, r.Text[0]...)
	}
	d := note(T("Reminded the requester of " + c.Ref + ": waiting for " + what + " for " + duration(ev.Waited) + "."))
	return []part{{key: "receipt.reminder", thread: targetReceipt, msg: r}, {key: "desk.reminder", thread: targetDesk, msg: d}}
}

// slaWarning is the desk note of an SLA warning: it mentions the assignee,
// or the expert on call while nobody has the case.
func (b *Bot) slaWarning(ctx context.Context, c CaseView, ev CaseEvent) (Message, error) {
	n := slaNotice(c, ev)
	line := Line{B("SLA warning: "), T(c.Ref + ": the " + n.Clock + " is due " + relTime(n.Due, b.now()) + ", at "), b.when(n.Due),
		T(" (" + n.about() + "). ")}
	if n.Paused {
		// No due time while the case waits on the requester: what is left.
		line = Line{B("SLA warning: "), T(c.Ref + ": the " + n.Clock + " has " + duration(max(n.Left, 0)) + " left (" + n.about() +
			"); its clock is paused while the case waits on the requester, and runs again when they answer. ")}
	}
	m := Message{Fallback: "SLA warning: " + c.Ref + " " + n.Clock + " due " + relTime(n.Due, b.now())}
	if n.Paused {
		m.Fallback = "SLA warning: " + c.Ref + " " + n.Clock + ": " + duration(max(n.Left, 0)) + " left, clock paused"
	}
	if c.Assignee != nil && b.isExpert(c.Assignee) {
		who := someone{platform: c.Assignee.Platform, id: c.Assignee.ID, name: userLabel(c.Assignee)}
		span, id := who.on(b.deskPlatform())
		m.Text, m.Mentions = []Line{append(line, span, T(" has the case."))}, nonEmpty(id)
		return m, nil
	}
	if c.Assignee != nil {
		// Its holder left the experts: the case is held by no one who
		// works it. The expert on call is told to take it over.
		line = append(line, U(userLabel(c.Assignee)), T(" has the case but is no longer a threat expert."))
	}
	switch who, has, err := b.onCallNow(ctx); {
	case err != nil:
		return m, err
	case has && c.Assignee != nil:
		span, id := who.on(b.deskPlatform())
		line = append(line, T(" "), span, T(" is on call: take it over with "+b.assignCommand(c.Ref)+"."))
		m.Mentions = nonEmpty(id)
	case has:
		span, id := who.on(b.deskPlatform())
		line = append(line, span, T(" is on call, and nobody has taken the case."))
		m.Mentions = nonEmpty(id)
	case c.Assignee != nil:
		line = append(line, T(" Another expert should take it over: "+b.assignCommand(c.Ref)+"."))
	default:
		line = append(line, T("Nobody has the case."))
	}
	m.Text = []Line{line}
	return m, nil
}

// assignCommand is how the desk's platform writes assigning ref to
// someone.
func (b *Bot) assignCommand(ref string) string {
	if b.deskPlatform() == Discord {
		return "/experts case assign case:" + ref + " expert:(you)"
	}
	return "/experts assign " + ref + " @you"
}

// about is "target 1 h, high priority".
func (n *SLANotice) about() string {
	if n.Target <= 0 {
		return n.Priority + " priority"
	}
	return "target " + duration(n.Target) + ", " + n.Priority + " priority"
}

// slaNotice is what an SLA event is about; a Cases that gives no details
// gets the case's own due time.
func slaNotice(c CaseView, ev CaseEvent) *SLANotice {
	if ev.SLA != nil {
		return ev.SLA
	}
	return &SLANotice{Clock: "SLA target", Priority: c.Priority, Due: c.SLA.Due}
}

func nonEmpty(ids ...string) []string {
	return slices.DeleteFunc(ids, func(s string) bool { return s == "" })
}

// slaBreach renders a breach: the desk thread note, and a direct message
// to each manager with a link to the card.
func (b *Bot) slaBreach(ctx context.Context, c CaseView, ev CaseEvent) []part {
	n := slaNotice(c, ev)
	managers := b.managers(ctx)
	head := Line{B("SLA breached: "), T(c.Ref + ": the " + n.Clock + " was due at "), b.when(n.Due),
		T(" (" + n.about() + "). ")}
	holder := "Nobody has taken it."
	if c.Assignee != nil {
		holder = userLabel(c.Assignee) + " has it."
	}
	desk := head
	if len(managers) > 0 {
		desk = append(desk, T("Escalated to the managers: "+names(managers)+"."))
	} else {
		desk = append(desk, T("No managers are configured to escalate to."))
	}
	parts := []part{{key: "desk.note", thread: targetDesk, msg: Message{Text: []Line{desk},
		Fallback: "SLA breached: " + c.Ref}}}
	dm := Message{Text: []Line{append(append(Line(nil), head...), T(b.orgName(c.Org)+". "+holder))},
		Fallback: "SLA breached: " + c.Ref + " (" + b.orgName(c.Org) + ")"}
	for _, mg := range managers {
		parts = append(parts, mg.dm("dm.manager."+string(mg.platform)+"."+mg.id, dm, targetDesk, deskLink(c.Ref)))
	}
	return parts
}

// pagedParts pages a high-priority case nobody took: the next expert on
// the rotation and the managers get a direct message with a link, and the
// desk thread says so. Nothing when someone took it meanwhile.
func (b *Bot) pagedParts(ctx context.Context, c CaseView, ev CaseEvent) ([]part, error) {
	if c.Status != StatusNew {
		return nil, nil // taken (or withdrawn) meanwhile
	}
	var paged []someone
	role, holder := "next on call", false
	before, decided, err := b.pagedBefore(ctx, ev.OutboxID)
	if err != nil {
		return nil, err
	}
	switch {
	case decided:
		// An earlier attempt named who it paged in the desk thread: a
		// retry pages the same expert, whatever the rotation says now (a
		// reload may have changed it), or nobody if they are no longer an
		// expert.
		if before != nil && b.cfg.Experts.Has(before.Member.Platform, before.Member.ID) {
			paged = append(paged, b.personOf(ctx, before.Member.Platform, before.Member.ID))
			if before.Holder {
				role = "on call now"
			}
		}
	case b.onCall != nil:
		// Whom to page when the sweep decided to, not when this attempt
		// runs: a retry after a hand-over pages no one else.
		p, ok, err := b.onCall.WhoToPage(ctx, c.OpenedAt, ev.At)
		if err != nil {
			return nil, fmt.Errorf("who to page: %w", err)
		}
		if ok && b.cfg.Experts.Has(p.Member.Platform, p.Member.ID) {
			paged = append(paged, b.personOf(ctx, p.Member.Platform, p.Member.ID))
			if p.Holder {
				role, holder = "on call now", true
			}
		}
	}
	managers := b.managers(ctx)
	waited := duration(ev.Waited)
	line := Line{B("Paged: "), T("nobody has taken " + c.Ref + " (" + c.Priority + " priority) in " + waited + ". ")}
	switch {
	case len(paged) > 0 && len(managers) > 0:
		line = append(line, T("Paged "+names(paged)+", "+role+", and the managers: "+names(managers)+"."))
	case len(paged) > 0:
		line = append(line, T("Paged "+names(paged)+", "+role+"."))
	case len(managers) > 0:
		line = append(line, T("Paged the managers: "+names(managers)+"."))
	default:
		line = append(line, T("Nobody is configured to page (oncall.rotation, managers)."))
	}
	// The desk note's key records whom the page named; a retry keeps the
	// key an earlier attempt recorded, even when that expert is not paged
	// again (no longer an expert), or the desk got a second note.
	deskKey := keyDeskPage
	switch {
	case decided && before != nil:
		deskKey += "." + string(before.Member.Platform) + "." + before.Member.ID
		if before.Holder {
			deskKey += keyPageHolder
		}
	case !decided && len(paged) > 0:
		deskKey += "." + string(paged[0].platform) + "." + paged[0].id
		if holder {
			deskKey += keyPageHolder
		}
	}
	parts := []part{{key: deskKey, thread: targetDesk, msg: Message{Text: []Line{line}, Fallback: "Paged: nobody has taken " + c.Ref}}}
	dm := Message{
		Text: append([]Line{{B(c.Ref + " needs an expert: "), T("a high-priority case from " + b.orgName(c.Org) + " (" + subjectLabel(c.Subject) + ") has waited " + waited + " and nobody has taken it.")}},
			paragraphs(cut(c.Question, 300))...),
		Fallback: c.Ref + " needs an expert: nobody has taken it in " + waited,
	}
	for _, p := range distinct(append(paged, managers...)) {
		parts = append(parts, p.dm("dm.page."+string(p.platform)+"."+p.id, dm, targetDesk, deskLink(c.Ref)))
	}
	return parts, nil
}

// keyDeskPage is the key of a page's note in the desk thread, followed by
// ".<platform>.<id>" of the expert it pages, and keyPageHolder when they
// hold the pager (pagedBefore reads it back).
const (
	keyDeskPage   = "desk.page"
	keyPageHolder = ".holder"
)

// pagedBefore is whom an earlier attempt to deliver the page of outbox
// row id decided to page, as its desk note's part key records it (sent, or
// tried and maybe sent): decided is false when no attempt got that far,
// and who is nil when it paged no expert.
func (b *Bot) pagedBefore(ctx context.Context, id int64) (who *OnCallPage, decided bool, err error) {
	if id == 0 {
		return nil, false, nil
	}
	done, err := b.delivered(ctx, id)
	if err != nil {
		return nil, false, err
	}
	tried, err := b.attempts(ctx, id)
	if err != nil {
		return nil, false, err
	}
	keys := make([]string, 0, len(done)+len(tried))
	for k := range done {
		keys = append(keys, k)
	}
	for k := range tried {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if k == keyDeskPage {
			return nil, true, nil
		}
		rest, ok := strings.CutPrefix(k, keyDeskPage+".")
		if !ok {
			continue
		}
		rest, holder := strings.CutSuffix(rest, keyPageHolder)
		if p, uid, ok := strings.Cut(rest, "."); ok && uid != "" {
			return &OnCallPage{Member: OnCallMember{Platform: Platform(p), ID: uid}, Holder: holder}, true, nil
		}
	}
	return nil, false, nil
}

// distinct drops people listed twice (an expert who is also a manager).
func distinct(ps []someone) []someone {
	seen := map[string]bool{}
	return slices.DeleteFunc(ps, func(p someone) bool {
		k := string(p.platform) + ":" + p.id
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	})
}

// names joins people's names: "Ana, Bo and Cy".
func names(ps []someone) string {
	var s string
	for i, p := range ps {
		switch {
		case i == 0:
		case i == len(ps)-1:
			s += " and "
		default:
			s += ", "
		}
		s += p.name
	}
	return s
}
