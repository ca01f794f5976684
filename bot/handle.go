package bot

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/threatdesk/threatdesk/internal/outbox"
)

// Form ids.
const (
	formAsk        = "ask"
	formConsult    = "consult"
	formConclude   = "conclude"
	formMoreInfo   = "more_info"
	formSample     = "sample"
	formAddDetails = "add_details"
	formMoreTime   = "more_time"
)

// Form field ids.
const (
	fieldQuestion = "question"
	fieldText     = "text"
	fieldSummary  = "summary"
	fieldFile     = "file"
)

// textMessage is a reply of one paragraph of plain text: a confirmation
// ("Opened EOD-12") as well as a refusal or an error.
func textMessage(msg string) Message {
	return Message{Text: []Line{{T(msg)}}, Fallback: cut(msg, maxListLineRunes)}
}

func opOf(r request) op {
	switch r.verb {
	case vAsk, vAlert, vDevice, vFile, vIncident:
		return opOpen
	case vStatus:
		return opStatus
	case vCases:
		return opCases
	case vCredits:
		return opCredits
	case vTake:
		return opTake
	case vAssign:
		return opAssign
	case vMoreInfo, vSample, vMoreTime, vConclude:
		return opExpertStatus
	case vNote:
		return opNote
	case vSampleNotify:
		return opSampleNotify
	case vReport:
		return opReport
	case vExport:
		return opExport
	case vVerify:
		return opVerify
	case vIncidents:
		return opIncidents
	case vUpload:
		return opUpload
	case vOncall:
		if r.take {
			return opOncallTake
		}
		return opOncall
	case vWeb:
		return opWeb
	case vIP, vURL, vActor:
		return opOpen
	case vCampaign:
		return opCampaign
	case vInstallLink:
		return opInstallLink
	case vWorkspaces:
		return opWorkspaces
	case vReload:
		return opReload
	}
	return opHelp
}

// denied says why the caller may not do o, and what to do instead.
func denied(w who, o op) Message {
	need := rolesText(permissions[o])
	switch {
	case w.readOnly != nil && slices.Contains(permissions[o], RoleMember):
		return textMessage("You can read " + w.readOnly.Name + "'s channel but not write in it, so you cannot act for " + w.readOnly.Name + " here. Ask an admin of the server for Send Messages in this channel.")
	case len(w.roles) == 0:
		return textMessage("This channel is not connected to an organisation in threatdesk, and you are not listed as an expert or manager. Ask in your organisation's SOC channel, or ask your threatdesk admin to add this channel to the config.")
	case o == opOpen && w.org == nil:
		return textMessage("Open cases from your organisation's SOC channel: this channel is not connected to an organisation.")
	}
	hint := ""
	switch needs := permissions[o]; {
	case w.has(RoleMember) && !slices.Contains(needs, RoleMember) && slices.Contains(needs, RoleExpert):
		hint = " To reach the experts about a case, reply in its thread."
	case slices.Contains(needs, RoleMember) && !w.has(RoleMember):
		hint = " Members do it from their organisation's SOC channel."
	}
	return textMessage(fmt.Sprintf("Only %s can %s.%s", need, o.phrase(), hint))
}

func (b *Bot) observeAck(kind string, start time.Time) {
	b.m.ack.WithLabelValues(kind).Observe(time.Since(start).Seconds())
}

// HandleCommand implements Handler. It decides from the config alone
// whether the command is help, refused or a form; otherwise it stores the
// command (one INSERT, which also deduplicates it) before acknowledging it,
// and the work runs from there, answering through c.Respond. When the
// database cannot be reached the acknowledgement says so and nothing is
// stored.
func (b *Bot) HandleCommand(ctx context.Context, c Command) Ack {
	b = b.current()
	defer b.observeAck("command", time.Now())
	r, uerr := parse(c)
	if uerr != nil {
		return Ack{Message: ptr(textMessage(uerr.msg)), Private: true}
	}
	w := b.identify(c.User, c.Channel, c.Thread)
	o := opOf(r)
	if o == opHelp {
		return Ack{Message: ptr(b.firstHelp(ctx, c.User, b.help(w))), Private: true}
	}
	if !w.may(o) {
		return Ack{Message: ptr(denied(w, o)), Private: true}
	}
	if o == opWeb {
		return b.webAck(ctx, w, c) // the link goes out in the acknowledgement, never stored as text
	}
	if o == opInstallLink {
		return b.installAck(ctx, c, r) // as /experts web: the link is never stored
	}
	key := inboundKey(c.User.Platform, kindCommand, c.Key)
	switch {
	case o == opOpen && r.kind == SubjectNone && !r.hasText:
		return b.formAck(ctx, c.User.Platform, key, b.askFormFor(ctx, formAsk, url.Values{"c": {c.Channel}}, "Ask a threat expert", "", Subject{Kind: SubjectNone}))
	case r.verb == vConclude && !r.hasText:
		return b.formAck(ctx, c.User.Platform, key, concludeForm(r.ref, c.Channel))
	case r.verb == vMoreTime && !r.hasText:
		return b.formAck(ctx, c.User.Platform, key, moreTimeForm(r.ref, c.Channel))
	}
	if c.Received.IsZero() {
		c.Received = time.Now()
	}
	ev := c
	ev.Respond = nil
	return b.acceptAck(ctx, c.User.Platform, kindCommand, key, inboundEvent{Command: &ev}, c.Respond)
}

// doCommand does a stored command's work; the checks HandleCommand made
// from the config are made again (the config may have changed since).
func (b *Bot) doCommand(ctx context.Context, c Command) (*Message, error) {
	r, uerr := parse(c)
	if uerr != nil {
		return nil, uerr
	}
	w := b.identify(c.User, c.Channel, c.Thread)
	if o := opOf(r); !w.may(o) {
		return nil, &Refusal{Msg: plainText(denied(w, o))}
	}
	m, err := b.runCommand(ctx, w, c, r)
	if errors.Is(err, errAnswered) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func ptr[T any](v T) *T { return &v }

// inboundKey namespaces an adapter's idempotency key by platform and kind;
// an event without one gets a random key (it cannot be deduplicated).
func inboundKey(p Platform, kind, key string) string {
	if key == "" {
		return ""
	}
	return string(p) + ":" + kind + ":" + key
}

func randomKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "rnd:" + hex.EncodeToString(b[:])
}

// plainText is a one-line message's text.
func plainText(m Message) string {
	var sb strings.Builder
	for _, l := range m.Text {
		for _, sp := range l {
			sb.WriteString(sp.Text)
		}
	}
	return sb.String()
}

func (b *Bot) respond(ctx context.Context, rs Responder, m Message, private bool) {
	if rs == nil {
		return
	}
	if err := rs.Respond(ctx, m, private); err != nil {
		b.log.Warn("could not answer the user", "err", err)
	}
}

// answerErr tells the user privately what went wrong and what to do.
func (b *Bot) answerErr(ctx context.Context, rs Responder, what string, err error) {
	b.respond(ctx, rs, b.errMessage(what, err), true)
}

// errMessage is what the user is told of err: a refusal or usage error in
// its own words, anything else as a failure on our side (logged).
func (b *Bot) errMessage(what string, err error) Message {
	var ref *Refusal
	var ue *usageError
	switch {
	case errors.As(err, &ref):
		return textMessage(ref.Msg)
	case errors.As(err, &ue):
		return textMessage(ue.msg)
	case errors.Is(err, ErrNotFound):
		return textMessage("Not found. Check the reference: /experts cases lists the cases you can see.")
	}
	b.log.Error("handling failed", "what", what, "err", err)
	return textMessage("Something went wrong on our side and nothing was changed. Try again in a minute; if it keeps failing, tell your threatdesk admin.")
}

// runCommand does a command's work and returns the private answer.
func (b *Bot) runCommand(ctx context.Context, w who, c Command, r request) (Message, error) {
	switch r.verb {
	case vAsk, vAlert, vDevice, vFile, vIncident:
		cv, pending, err := b.ask(ctx, w, askInput{key: inboundKey(c.User.Platform, "command", c.Key), subject: Subject{Kind: r.kind, ID: r.id},
			question: r.text, channel: c.Channel, thread: c.Thread})
		if err != nil || pending != nil {
			return deref(pending), err
		}
		return textMessage(fmt.Sprintf("Opened %s (%s priority). A threat expert will answer in the thread of its receipt in this channel.", cv.Ref, cv.Priority)), nil
	case vStatus:
		s, _ := w.scope()
		cv, err := b.cases.Get(ctx, s, r.ref)
		if err != nil {
			return Message{}, err
		}
		if cv.LastMessageAt, cv.LastMessageSide, err = b.cases.LastMessage(ctx, s, cv.Ref); err != nil {
			return Message{}, err
		}
		return b.statusMessage(cv), nil
	case vCases:
		if r.search != "" {
			return b.searchCases(ctx, w, c.User.Platform, r)
		}
		return b.listCases(ctx, w, c.User.Platform, r)
	case vCredits:
		org := r.org
		if !w.has(RoleManager) || org == "" {
			if w.org == nil {
				return Message{}, &usageError{msg: "Which org? Usage: /experts credits <org id>, e.g. /experts credits " + b.cfg.Orgs[0].ID + "."}
			}
			org = w.org.ID
		}
		if _, ok := b.cfg.org(org); !ok {
			return Message{}, &usageError{msg: fmt.Sprintf("%q is not an org: the org ids are %s.", org, b.orgIDs())}
		}
		cr, err := b.cases.Credits(ctx, org)
		if err != nil {
			return Message{}, err
		}
		return Message{Title: "Expert credits · " + b.orgName(org), Fields: []Field{
			{Label: "Balance", Value: Line{T(fmt.Sprintf("%d", cr.Balance))}},
			{Label: "Per quarter", Value: Line{T(fmt.Sprintf("%d", cr.Allowance))}},
			{Label: "Resets", Value: Line{T(cr.ResetsAt.In(cmp.Or(b.cfg.Location, time.UTC)).Format("2 January 2006"))}},
		}, Fallback: fmt.Sprintf("%s: %d credits", org, cr.Balance)}, nil
	case vTake:
		ref, key := r.ref, inboundKey(c.User.Platform, kindCommand, c.Key)
		if ref == "" {
			// Worked again after a crash: the case this command took.
			prev, ok, err := b.cases.TakenWith(ctx, b.named(ctx, w.user), key)
			if err != nil {
				return Message{}, err
			}
			if ok {
				ref = prev
			}
		}
		if ref == "" {
			l, err := b.cases.List(ctx, Scope{All: true}, CaseFilter{Which: "new", Limit: 1})
			if err != nil {
				return Message{}, err
			}
			if len(l.Cases) == 0 {
				return textMessage("No new cases are waiting. /experts cases open lists the open ones."), nil
			}
			ref = l.Cases[0].Ref
		}
		cv, err := b.cases.Take(ctx, ref, b.named(ctx, w.user), key)
		if err != nil {
			return Message{}, err
		}
		return textMessage("You have " + cv.Ref + ". Reply in its desk thread to talk to the requester."), nil
	case vAssign:
		a, ok := b.adapter(c.User.Platform)
		target := User{Platform: c.User.Platform, Workspace: c.User.Workspace, ID: r.user}
		if !b.cfg.Experts.Has(target.Platform, target.ID) {
			return Message{}, &usageError{msg: fmt.Sprintf("%s is not a threat expert in the config: assign to one of the experts.", r.user)}
		}
		if ok {
			if n, err := a.UserName(ctx, target.Workspace, target.ID); err == nil {
				target.DisplayName = n
			}
		}
		cv, err := b.cases.Assign(ctx, r.ref, target, b.named(ctx, w.user), w.roleFor(opAssign))
		if err != nil {
			return Message{}, err
		}
		return textMessage(cv.Ref + " is now with " + userLabel(&target) + "."), nil
	case vMoreInfo, vSample, vMoreTime, vConclude:
		to := map[string]Status{vMoreInfo: StatusMoreInfo, vSample: StatusSample, vMoreTime: StatusMoreTime, vConclude: StatusConcluded}[r.verb]
		if r.verb == vSample && !r.hasText {
			if err := b.needFileNamed(ctx, r.ref); err != nil {
				return Message{}, err
			}
		}
		cv, err := b.cases.Transition(ctx, Scope{All: true}, r.ref, to, b.named(ctx, w.user), RoleExpert, r.text, inboundKey(c.User.Platform, kindCommand, c.Key))
		if err != nil {
			return Message{}, err
		}
		return textMessage(cv.Ref + " is now " + strings.ToLower(cv.Status.label()) + "."), nil
	case vNote:
		m := CaseMessage{Ref: r.ref, Side: SideExpert, Role: RoleExpert, Author: b.named(ctx, w.user), Text: r.text, Internal: true}
		if c.Key != "" {
			// Keyed on the command's delivery: worked again after a crash
			// between storing it and settling the command, it is not
			// stored twice.
			m.Chat = Ref{Platform: c.User.Platform, Workspace: c.User.Workspace, Channel: c.Channel, Message: "command:" + c.Key}
		}
		err := b.cases.AddMessage(ctx, m)
		if err != nil {
			return Message{}, err
		}
		return textMessage("Internal note added to " + r.ref + ". The requester does not see it."), nil
	case vSampleNotify:
		return b.sampleNotification(ctx, w, r)
	case vReport:
		return b.runReport(ctx, w, r)
	case vExport:
		return b.runExport(ctx, w, c, r)
	case vVerify:
		return b.runVerify(ctx, w, r)
	case vIncidents:
		return b.listIncidents(ctx, w, r)
	case vUpload:
		return b.uploadCommand(ctx, w, c, r)
	case vOncall:
		return b.oncallCommand(ctx, w, r)
	case vIP, vURL, vActor:
		return b.askAboutCommand(ctx, w, c, r)
	case vCampaign:
		return b.campaignCommand(ctx, w, r)
	case vReload:
		return b.reloadCommand(ctx, w)
	case vWorkspaces:
		return b.workspacesCommand(ctx)
	}
	return b.help(w), nil
}

func (b *Bot) orgIDs() string {
	ids := make([]string, len(b.cfg.Orgs))
	for i, o := range b.cfg.Orgs {
		ids[i] = o.ID
	}
	return strings.Join(ids, ", ")
}

// named fills in a user's display name from the adapter when it is missing.
func (b *Bot) named(ctx context.Context, u User) User {
	if u.DisplayName != "" {
		return u
	}
	if a, ok := b.adapter(u.Platform); ok {
		if n, err := a.UserName(ctx, u.Workspace, u.ID); err == nil {
			u.DisplayName = n
		}
	}
	return u
}

// open opens a case for a member, enriching the subject from hunting.
func (b *Bot) open(ctx context.Context, w who, key string, s Subject, question, channel string, thread *Ref) (CaseView, error) {
	if w.org == nil {
		return CaseView{}, &Refusal{Msg: "Open cases from your organisation's SOC channel."}
	}
	if s.Kind != SubjectNone && b.hunt != nil {
		if d, ok, err := b.hunt.Describe(ctx, w.org.ID, s.Kind, s.ID); err != nil {
			b.log.Warn("could not enrich a case subject; opening without it", "kind", s.Kind, "err", err)
		} else if ok {
			d.Kind, d.ID = s.Kind, cmp.Or(d.ID, s.ID)
			s = d
		}
	}
	if question == "" {
		question = "(no question given: please describe what you need in the thread)"
	}
	origin := Dest{Platform: w.user.Platform, Workspace: w.user.Workspace, Channel: channel}
	if thread != nil && thread.Channel != "" {
		origin.Channel = thread.Channel
	}
	if key == "" {
		key = randomKey() // casework deduplicates on the key: never share an empty one
	}
	// The origin goes into the transaction that opens the case: once that
	// commits there is nothing left to write, so a committed case is never
	// reported as a failure (which would make the requester retry and pay a
	// second credit).
	return b.cases.Open(ctx, OpenCase{Key: key, Org: w.org.ID, Subject: s, Question: question, Requester: b.named(ctx, w.user), Origin: origin})
}

func (b *Bot) listCases(ctx context.Context, w who, p Platform, r request) (Message, error) {
	s, _ := w.scope()
	if r.org != "" {
		if !w.may(opCasesAnyOrg) {
			// The same answer for a real org id and a made-up word, so that
			// members cannot learn which orgs exist.
			return Message{}, &usageError{msg: fmt.Sprintf("%q is not a list: %s.", r.org, hintFilter)}
		}
		if _, ok := b.cfg.org(r.org); !ok {
			return Message{}, &usageError{msg: fmt.Sprintf("%q is neither a list (open, mine, breaching, all) nor an org: the org ids are %s.", r.org, b.orgIDs())}
		}
		s = Scope{Org: r.org}
	}
	f := CaseFilter{Which: r.filter, Limit: maxListed}
	if r.filter == "mine" {
		// An expert's cases are the ones assigned to them; a member's (an
		// analyst's, a manager's in an org channel) the ones they asked.
		if w.has(RoleExpert) {
			f.Assignee = w.user.ID
		} else {
			u := w.user
			f.Requester = &u
		}
	}
	title := map[string]string{"open": "Open cases", "mine": "Your cases", "breaching": "Cases at risk of breaching their SLA", "all": "All cases"}[r.filter]
	if s.Org != "" {
		title += " · " + b.orgName(s.Org)
	}
	return b.casesFirstPage(ctx, w, p, s, f, title) // pages of maxListed, with More
}

func (b *Bot) sampleNotification(ctx context.Context, w who, r request) (Message, error) {
	o := w.org
	if o == nil {
		return Message{}, &usageError{msg: "Run /experts sample-notification in the org channel whose routing you want to check."}
	}
	tx, err := b.db.Begin(ctx)
	if err != nil {
		return Message{}, fmt.Errorf("sample notification: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	by := b.named(ctx, w.user)
	if _, err := outbox.Append(ctx, tx, outbox.Event{Kind: kindSampleNotification, Stream: "sample:" + o.ID,
		Payload: sampleEvent{Org: o.ID, By: userLabel(&by)}}); err != nil {
		return Message{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return Message{}, fmt.Errorf("sample notification: commit: %w", err)
	}
	d := o.NotifyDest()
	return textMessage(fmt.Sprintf("A test notification for %s is on its way to %s channel %s.", o.Name, d.Platform, d.Channel)), nil
}

// help is the usage for the caller's roles, as the caller's platform
// writes it: on Discord experts' case verbs are under "case", admins'
// under "admin", and a search or taking the pager are options.
func (b *Bot) help(w who) Message {
	m := Message{Title: "/experts: ask a threat expert", Fallback: "/experts help"}
	if len(w.roles) == 0 {
		m.Text = []Line{{T("This channel is not connected to an organisation, and you are not an expert or manager. Use /experts in your organisation's SOC channel, or ask your threatdesk admin to add this channel.")}}
		return m
	}
	discord := w.user.Platform == Discord
	// on is a command as the caller types it: slack, or on Discord discord.
	on := func(slackForm, discordForm string) string {
		if discord {
			return discordForm
		}
		return slackForm
	}
	search := on("cases search", "cases search:")
	if w.has(RoleMember) {
		m.Sections = append(m.Sections, Section{Title: "Ask (" + w.org.Name + ")", Lines: []Line{
			{B("/experts ask"), T(" [question]: a general question (a form opens without text)")},
			{B("/experts alert"), T(" <alert id> [question]")},
			{B("/experts device"), T(" <device id or host name> [question]")},
			{B("/experts file"), T(" <sha1 or sha256> [question]")},
			{B("/experts incident"), T(" <threatdesk incident number, as on the notification card> [question]")},
			{B("/experts ip"), T(" <address> [question]; "), B("url"), T(" <url or domain> [question]: a suspicious network connection")},
			{B("/experts actor"), T(" <name> [question]: a threat actor or campaign")},
			{B("/experts status"), T(" <EOD-n>: status, assignee, age, SLA, last message")},
			{B("/experts cases"), T(" [open|mine|breaching|all]")},
			{B("/experts credits"), T(": your balance and when it resets")},
			{B("/experts report"), T(" [week|month|quarter]; "), B(search), T(" <words|hash|host|@user|EOD-n>; "), B("export"), T(" <EOD-n>: the case's record, privately; "), B("verify"), T(" <EOD-n>: check its timeline")},
			{B("/experts incidents"), T(" [open|quiet|all]: incidents with score and why, posted or quiet; Notify now, Consult")},
			{B("/experts upload"), T(" <EOD-n>: a one-time link to send the experts a file sample (or post the file in the case's thread)")},
			{B("/experts web"), T(": a private sign-in link to the case tracker in your browser")},
			{T("Reply in a case's thread to talk to the expert.")},
		}})
	}
	if w.has(RoleExpert) {
		c := on("/experts ", "/experts case ")
		m.Sections = append(m.Sections, Section{Title: "Experts", Lines: []Line{
			{B(c + "take"), T(" [EOD-n]: take a case (without one: the most urgent new case)")},
			{B(c + "assign"), T(" <EOD-n> @expert")},
			{B(c + "more-info"), T(" <EOD-n> [what you need]; "), B(on("sample", "case sample")), T(" <EOD-n> [which file]; "), B(on("more-time", "case more-time")), T(" <EOD-n> [why]")},
			{B(c + "conclude"), T(" <EOD-n> [summary] (a form opens without one)")},
			{B(c + "note"), T(" <EOD-n> <text>: an internal note, never shown to the requester")},
			{B(on("/experts campaign", "/experts campaign show")), T(" <name>: every tagged case and incident, all orgs; "), B("campaign tag"), T(" <EOD-n|incident> <name>; "), B("campaign share"), T(" <name>: name it on the customers' notifications")},
			{B("/experts cases"), T(" [open|mine|breaching|all] [org]; "), B("status"), T(" <EOD-n>")},
			{B("/experts report"), T(" [org] [week|month|quarter]; "), B(search), T(" <words|hash|host|@user|EOD-n>; "), B("export"), T(" <EOD-n> (with internal notes); "), B("verify"), T(" <EOD-n>")},
			{B("/experts incidents"), T(" [open|quiet|all] [org]: incidents with score and why; Notify now posts a quiet one")},
			{B("/experts oncall"), T(": who is on call, until when, and who is next; "), B(on("oncall take", "oncall action:take")), T(": take the pager until the next hand-over")},
			{B("/experts web"), T(": a private sign-in link to the case tracker in your browser")},
			{T("Reply in a desk card's thread to answer the requester.")},
		}})
	}
	if w.has(RoleManager) && !w.has(RoleExpert) {
		m.Sections = append(m.Sections, Section{Title: "Managers", Lines: []Line{
			{B("/experts cases"), T(" [open|breaching|all] [org]; "), B("status"), T(" <EOD-n>; "), B("credits"), T(" <org>; "), B(on("assign", "case assign")), T(" <EOD-n> @expert")},
			{B("/experts report"), T(" [org] [week|month|quarter]: the service report; "), B(search), T(" <words|hash|host|@user|EOD-n>; "), B("export"), T(" <EOD-n>; "), B("verify"), T(" <EOD-n>")},
			{B("/experts incidents"), T(" [open|quiet|all] [org]: incidents with score and why, posted or quiet")},
			{B("/experts oncall"), T(": who is on call, until when, and who is next")},
			{B("/experts web"), T(": a private sign-in link to the case tracker in your browser")},
		}})
	}
	if w.has(RoleAdmin) {
		a := on("/experts ", "/experts admin ")
		m.Sections = append(m.Sections, Section{Title: "Admins", Lines: []Line{
			{B(a + "sample-notification"), T(": send a clearly labelled test notification to this org's notification channel")},
			{B(a + "install-link"), T(" <org>: a private, single-use link that adds threatdesk to that org's Slack workspace")},
			{B(a + "workspaces"), T(": the Slack workspaces that added threatdesk, those that removed it, and the orgs still to install")},
			{B(a + "reload"), T(": read the config file again and switch to it (every problem is reported; a bad file changes nothing)")},
		}})
	}
	if discord {
		m.Sections = append(m.Sections, Section{Lines: []Line{{T("On Discord, pick the subcommand and fill its options as Discord shows them.")}}})
	}
	return m
}

func askForm(id string, state url.Values, title, prefill string) Form {
	return Form{ID: id, State: state.Encode(), Title: title, Submit: "Ask", Fields: []FormField{{
		ID: fieldQuestion, Label: "Your question", Kind: InputParagraph, Value: prefill, Required: true, MinLength: 5, MaxLength: 3000,
		Placeholder: "What do you need to know? Include what you have already checked.",
	}}}
}

func concludeForm(ref, channel string) Form {
	return Form{ID: formConclude, State: url.Values{"ref": {ref}, "c": {channel}}.Encode(), Title: "Conclude " + ref, Submit: "Conclude",
		Fields: []FormField{{ID: fieldSummary, Label: "Summary for the requester", Kind: InputParagraph, Required: true, MinLength: 10, MaxLength: 3000,
			Placeholder: "What you found, how confident you are, and what they should do."}}}
}

func textForm(id, ref, channel, title, label string, required bool) Form {
	return Form{ID: id, State: url.Values{"ref": {ref}, "c": {channel}}.Encode(), Title: title, Submit: "Send",
		Fields: []FormField{{ID: fieldText, Label: label, Kind: InputParagraph, Required: required, MaxLength: 3000}}}
}

// actionOp is the permission a button needs; ok is false for a button this
// version does not know.
func actionOp(a ActionID) (op, bool) {
	switch a {
	case ActTake:
		return opTake, true
	case ActMoreInfo, ActSample, ActMoreTime, ActConclude:
		return opExpertStatus, true
	case ActAddDetails:
		return opAddDetails, true
	case ActClose:
		return opClose, true
	case ActWithdraw:
		return opWithdraw, true
	case ActReopen:
		return opReopen, true
	case ActConsult, ActAskEntity:
		return opOpen, true
	case ActAcknowledge:
		return opAcknowledge, true
	case ActShowScope:
		return opShowScope, true
	case ActMore:
		return opCases, true
	case ActResolve:
		return opResolve, true
	case ActNotifyNow:
		return opNotifyNow, true
	case ActOlderIncidents:
		return opIncidents, true
	case ActDownloadSample:
		return opDownload, true
	case ActAskAnyway, ActFollow, ActOpenNew, ActCancelAsk:
		return opChooseAsk, true
	case ActApproveAsk:
		return opApproveAsk, true
	case ActTagCampaign:
		return opCampaign, true
	}
	return "", false
}

// HandleAction implements Handler: a button press. The button carries ids
// only; permission and state are checked again here and in casework. A
// button that opens a form is answered with it; any other is stored before
// it is acknowledged, as commands are.
func (b *Bot) HandleAction(ctx context.Context, a Action) Ack {
	b = b.current()
	start := time.Now()
	defer b.observeAck("action", start)
	w := b.identify(a.User, a.actsIn(), nil)
	o, known := actionOp(a.Action)
	if !known {
		return Ack{Message: ptr(textMessage("That button is from an older version of threatdesk; use /experts help.")), Private: true}
	}
	if !w.may(o) {
		return Ack{Message: ptr(denied(w, o)), Private: true}
	}
	ref, _ := normRef(a.Value)
	key := inboundKey(a.User.Platform, kindAction, a.Key)
	p := a.User.Platform
	switch a.Action {
	case ActMoreInfo:
		return b.formAck(ctx, p, key, textForm(formMoreInfo, ref, a.actsIn(), "More info for "+ref, "What do you need from the requester?", true))
	case ActSample:
		return b.formAck(ctx, p, key, b.sampleForm(ctx, ref, a.actsIn()))
	case ActMoreTime:
		return b.formAck(ctx, p, key, moreTimeForm(ref, a.actsIn()))
	case ActConclude:
		return b.formAck(ctx, p, key, concludeForm(ref, a.actsIn()))
	case ActAddDetails:
		return b.formAck(ctx, p, key, textForm(formAddDetails, ref, a.actsIn(), "Add details to "+ref, "What should the expert know?", true))
	case ActConsult:
		return b.formAck(ctx, p, key, b.askFormFor(ctx, formConsult, url.Values{"c": {a.actsIn()}, "i": {a.Value}}, "Consult a threat expert",
			orgID(w), Subject{Kind: SubjectIncident, ID: a.Value}))
	case ActAskEntity:
		kind, id, _ := strings.Cut(a.Value, ":")
		if _, err := validSubject(SubjectKind(kind), id); err != nil || (kind != string(SubjectDevice) && kind != string(SubjectFile) && kind != string(SubjectIP)) {
			return Ack{Message: ptr(textMessage("That button does not name a device, file or address.")), Private: true}
		}
		return b.formAck(ctx, p, key, b.askFormFor(ctx, formConsult, url.Values{"c": {a.actsIn()}, "k": {kind}, "i": {id}}, askEntityTitle(kind),
			orgID(w), Subject{Kind: SubjectKind(kind), ID: id}))
	case ActResolve:
		return b.resolveAction(ctx, a, key)
	case ActTagCampaign:
		return b.formAck(ctx, p, key, campaignForm(ref, a.actsIn()))
	}
	ev := a
	ev.Respond = nil
	return b.acceptAck(ctx, p, kindAction, key, inboundEvent{Action: &ev}, a.Respond)
}

// doAction does a stored button press's work.
func (b *Bot) doAction(ctx context.Context, a Action) (*Message, error) {
	w := b.identify(a.User, a.actsIn(), nil)
	if o, known := actionOp(a.Action); !known || !w.may(o) {
		return nil, &Refusal{Msg: plainText(denied(w, o))}
	}
	ref, _ := normRef(a.Value)
	return b.runAction(ctx, w, a, ref)
}

func (b *Bot) runAction(ctx context.Context, w who, a Action, ref string) (*Message, error) {
	switch a.Action {
	case ActTake:
		cv, err := b.cases.Take(ctx, ref, b.named(ctx, w.user), inboundKey(a.User.Platform, kindAction, a.Key))
		if err != nil {
			return nil, err
		}
		return ptr(textMessage("You have " + cv.Ref + ".")), nil
	case ActMoreTime:
		cv, err := b.cases.Transition(ctx, Scope{All: true}, ref, StatusMoreTime, b.named(ctx, w.user), RoleExpert, "", inboundKey(a.User.Platform, kindAction, a.Key))
		if err != nil {
			return nil, err
		}
		return ptr(textMessage(cv.Ref + " is now " + strings.ToLower(cv.Status.label()) + ".")), nil
	case ActClose, ActReopen, ActWithdraw:
		to := map[ActionID]Status{ActClose: StatusClosed, ActReopen: StatusInProgress, ActWithdraw: StatusWithdrawn}[a.Action]
		role := w.roleFor(map[ActionID]op{ActClose: opClose, ActReopen: opReopen, ActWithdraw: opWithdraw}[a.Action])
		sc := w.scopeFor(role)
		cv, err := b.cases.Transition(ctx, sc, ref, to, b.named(ctx, w.user), role, "", inboundKey(a.User.Platform, kindAction, a.Key))
		if err != nil {
			return nil, err
		}
		return ptr(textMessage(cv.Ref + " is now " + strings.ToLower(cv.Status.label()) + ".")), nil
	case ActAskAnyway, ActFollow, ActOpenNew, ActCancelAsk, ActApproveAsk:
		return b.choose(ctx, w, a)
	case ActAcknowledge:
		if b.hunt == nil {
			return nil, &Refusal{Msg: "Notifications are not enabled in this deployment."}
		}
		if w.org == nil {
			return nil, &Refusal{Msg: "Acknowledge an incident from its notification in the org's channel."}
		}
		if err := b.hunt.Acknowledge(ctx, w.org.ID, a.Value, b.named(ctx, w.user)); err != nil {
			return nil, incidentNotFound(err)
		}
		return ptr(textMessage("Acknowledged incident " + a.Value + "; the reminders stop.")), nil
	case ActShowScope:
		if b.hunt == nil {
			return nil, &Refusal{Msg: "Notifications are not enabled in this deployment."}
		}
		if w.org == nil {
			return nil, &Refusal{Msg: "Show the full scope from the notification in the org's channel."}
		}
		scope, err := b.hunt.FullScope(ctx, w.org.ID, a.Value)
		if err != nil {
			return nil, incidentNotFound(err)
		}
		// Through the outbox, delivered once: a press worked again after
		// a lost answer or a crash does not post it twice.
		if err := b.queueScope(ctx, a, w.org.ID, scopeMessages(a.Value, scope)); err != nil {
			return nil, err
		}
		return nil, nil
	case ActMore:
		return b.morePage(ctx, w, a)
	case ActNotifyNow:
		return b.notifyNow(ctx, w, a.Value)
	case ActOlderIncidents:
		return b.olderIncidents(ctx, w, a.Value)
	case ActDownloadSample:
		return b.downloadSample(ctx, w, a)
	}
	return nil, nil
}

// HandleSubmit implements Handler: a submitted form. Required fields are
// checked at once (the form stays open with the error); the submission is
// then stored before it is acknowledged and its work runs from there.
func (b *Bot) HandleSubmit(ctx context.Context, s Submission) SubmitAck {
	b = b.current()
	start := time.Now()
	defer b.observeAck("submit", start)
	field, minLen := fieldText, 1
	switch s.FormID {
	case formAsk, formConsult:
		field, minLen = fieldQuestion, 5
		if _, ok := chosenPriority(s.Values); !ok {
			return SubmitAck{Errors: map[string]string{fieldPriority: "Choose high, medium or low."}}
		}
	case formConclude:
		field, minLen = fieldSummary, 10
	case formSample:
		minLen = 0
		// Only an expert's form is checked against its case: anyone else's
		// is refused when it is worked, the same whatever case it names.
		if b.identify(s.User, s.Channel, nil).may(opExpertStatus) {
			if errs := b.checkSampleForm(ctx, s); errs != nil {
				return SubmitAck{Errors: errs}
			}
		}
	case formMoreTime:
		minLen = 0
	case formMoreInfo, formAddDetails:
	case formResolveIncident:
		if ack, ok := checkResolveForm(s); !ok {
			return ack
		}
		field, minLen = fieldComment, 0
	case formCampaign:
		minLen = minActorRunes
	default:
		return SubmitAck{Errors: map[string]string{"": "This form is from an older version of threatdesk; close it and start again."}}
	}
	text := strings.TrimSpace(s.Values[field])
	if len([]rune(text)) < minLen {
		return SubmitAck{Errors: map[string]string{field: fmt.Sprintf("Write at least %d characters.", minLen)}}
	}
	ev := s
	ev.Respond = nil
	switch b.accept(ctx, s.User.Platform, kindSubmit, inboundKey(s.User.Platform, kindSubmit, s.Key), inboundEvent{Submission: &ev}, s.Respond, nil) {
	case storedUnavailable:
		// The form stays open with its text (Slack), so it can be sent again.
		return SubmitAck{Errors: map[string]string{field: msgUnavailable}}
	case storedUncertain:
		return SubmitAck{Errors: map[string]string{field: msgUncertain}}
	}
	return SubmitAck{}
}

// submitField is the field holding a form's text: the question, the
// summary, the comment.
func submitField(form string) string {
	switch form {
	case formAsk, formConsult:
		return fieldQuestion
	case formConclude:
		return fieldSummary
	case formResolveIncident:
		return fieldComment
	}
	return fieldText
}

// keepWritten adds to a refused or failed submission's answer the text the
// person wrote: the form is gone by then (on Discord, as soon as it is
// sent), and what they wrote must not be lost with it.
func keepWritten(m Message, row inboundRow) Message {
	s := row.event.Submission
	if s == nil {
		return m
	}
	fields := []string{submitField(s.FormID)}
	if s.FormID == formSample {
		fields = append(fields, fieldFile)
	}
	var texts []string
	for _, f := range fields {
		if t := strings.TrimSpace(s.Values[f]); t != "" {
			texts = append(texts, t)
		}
	}
	if len(texts) == 0 {
		return m
	}
	m.Text = append(m.Text, Line{B("What you wrote, to send it again:")})
	// Whole: the form takes more than a relay's piece.
	m.Quote = strings.Join(texts, "\n\n")
	return m
}

// doSubmit does a stored form submission's work; HandleSubmit checked its
// required field.
func (b *Bot) doSubmit(ctx context.Context, s Submission) (*Message, error) {
	state, _ := url.ParseQuery(s.State)
	text := strings.TrimSpace(s.Values[submitField(s.FormID)])
	// The channel the platform reports wins over the one carried in the
	// form's state: state can come back from a client, and it must never
	// decide which org the submitter acts for.
	channel := cmp.Or(s.Channel, state.Get("c"))
	w := b.identify(s.User, channel, nil)
	ref, _ := normRef(state.Get("ref"))
	m, err := b.runSubmit(ctx, w, s, state, ref, text, channel)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

func (b *Bot) runSubmit(ctx context.Context, w who, s Submission, state url.Values, ref, text, channel string) (Message, error) {
	need := func(o op) error {
		if !w.may(o) {
			return &Refusal{Msg: plainText(denied(w, o))}
		}
		return nil
	}
	switch s.FormID {
	case formAsk, formConsult:
		if err := need(opOpen); err != nil {
			return Message{}, err
		}
		subj := Subject{Kind: SubjectNone}
		if id := state.Get("i"); id != "" {
			kind := SubjectKind(cmp.Or(state.Get("k"), string(SubjectIncident)))
			nid, uerr := validSubject(kind, id)
			if uerr != nil {
				return Message{}, uerr
			}
			subj = Subject{Kind: kind, ID: nid}
		}
		prio, ok := chosenPriority(s.Values)
		if !ok {
			return Message{}, &usageError{msg: "Choose the priority: high, medium or low."}
		}
		cv, pending, err := b.ask(ctx, w, askInput{key: inboundKey(s.User.Platform, "submit", s.Key), subject: subj, question: text, channel: channel, priority: prio})
		if err != nil || pending != nil {
			return deref(pending), err
		}
		return textMessage(fmt.Sprintf("Opened %s (%s priority). A threat expert will answer in its thread.", cv.Ref, cv.Priority)), nil
	case formConclude, formMoreInfo, formSample, formMoreTime:
		if err := need(opExpertStatus); err != nil {
			return Message{}, err
		}
		to := map[string]Status{formConclude: StatusConcluded, formMoreInfo: StatusMoreInfo, formSample: StatusSample, formMoreTime: StatusMoreTime}[s.FormID]
		if s.FormID == formSample {
			var err error
			if text, err = b.sampleNote(ctx, ref, s.Values[fieldFile], text); err != nil {
				return Message{}, err
			}
		}
		cv, err := b.cases.Transition(ctx, Scope{All: true}, ref, to, b.named(ctx, w.user), RoleExpert, text, inboundKey(s.User.Platform, kindSubmit, s.Key))
		if err != nil {
			return Message{}, err
		}
		return textMessage(cv.Ref + " is now " + strings.ToLower(cv.Status.label()) + "."), nil
	case formAddDetails:
		if err := need(opAddDetails); err != nil {
			return Message{}, err
		}
		sc := w.scopeFor(RoleMember)
		if _, err := b.cases.Get(ctx, sc, ref); err != nil {
			return Message{}, err
		}
		m := CaseMessage{Ref: ref, Org: sc.Org, Role: RoleMember, Side: SideRequester, Author: b.named(ctx, w.user), Text: text}
		if s.Key != "" {
			// Keyed on the submission: worked again after a crash between
			// storing it and settling the submission, it is not stored
			// (nor relayed) twice.
			m.Chat = Ref{Platform: s.User.Platform, Workspace: s.User.Workspace, Channel: channel, Message: "submit:" + s.Key}
		}
		if err := b.cases.AddMessage(ctx, m); err != nil {
			return Message{}, err
		}
		return textMessage("Added to " + ref + "; the expert sees it in the desk thread."), nil
	case formResolveIncident:
		if err := need(opResolve); err != nil {
			return Message{}, err
		}
		return b.resolveSubmitted(ctx, w, s, state, text)
	case formCampaign:
		if err := need(opCampaign); err != nil {
			return Message{}, err
		}
		return b.campaignCommand(ctx, w, request{verb: vCampaign, action: campaignTag, id: ref, text: text})
	}
	return Message{}, &Refusal{Msg: "Unknown form."}
}

// HandleReply implements Handler: a message in a thread. Replies in a
// case's receipt thread go to the desk and the other way round; the bot's
// own and other bots' posts are never relayed. A reply in a case's thread is
// stored (one INSERT, which also deduplicates it and checks the thread is a
// case's) before HandleReply returns; an error means it was not, and the
// adapter must not acknowledge it as received.
func (b *Bot) HandleReply(ctx context.Context, r Reply) error {
	b = b.current()
	if r.FromBot || (strings.TrimSpace(r.Text) == "" && len(r.Files) == 0 && r.Change != ReplyDeleted) {
		return nil // a reply with files and no text is a file sample (samples.go)
	}
	defer b.observeAck("reply", time.Now())
	key := r.Key
	if key == "" {
		key = "reply:" + string(r.Message.Platform) + ":" + r.Message.Channel + ":" + r.Message.Message
	}
	ev := r
	parent := r.Parent
	if st := b.accept(ctx, r.Message.Platform, kindReply, inboundKey(r.Message.Platform, kindReply, key), inboundEvent{Reply: &ev}, nil, &parent); st == storedUnavailable || st == storedUncertain {
		return errors.New("thread reply not stored: threatdesk cannot reach its database")
	}
	return nil
}

// relay passes a stored reply to the other side of its case. casework keys
// the message on the chat message, so a retry never relays it twice.
func (b *Bot) relay(ctx context.Context, r Reply) error {
	if r.Change != "" {
		return b.relayChange(ctx, r)
	}
	an, ok, err := b.anchorAt(ctx, r.Parent)
	if err != nil || !ok {
		return err // not a thread of ours
	}
	ref, isCase := strings.CutPrefix(an.Stream, "case:")
	if !isCase {
		return nil
	}
	if !r.HoldMark {
		// Stored: a catch-up need not read it again (ReplyMark).
		b.markThread(ctx, r.Parent, r.Message)
	}
	w := b.identify(r.Author, r.Parent.Channel, nil)
	side := SideRequester
	o := opRelayAsker
	if an.Target == targetDesk {
		side, o = SideExpert, opRelayExpert
	}
	if !w.may(o) {
		b.log.Info("not relaying a thread reply from someone without the role", "case", ref, "side", side, "user", r.Author.ID)
		// Said to its author, privately: a manager writing in a desk
		// thread believed the requester read it.
		why := "only threat experts answer in a desk card's thread (/experts note " + ref + " adds an internal note)"
		if side == SideRequester {
			why = "only members of the organisation's SOC write to the experts in a case's thread"
		}
		told := string(r.Parent.Platform) + "|" + r.Parent.Channel + "|" + r.Parent.Message + "|" + r.Author.ID
		if _, again := b.toldNotRelayed.LoadOrStore(told, true); again {
			return nil // said once a thread, for this process
		}
		if a, ok := b.adapter(r.Author.Platform); ok {
			_ = a.PostPrivate(ctx, Dest{Platform: r.Parent.Platform, Workspace: r.Parent.Workspace, Channel: r.Parent.Channel, Thread: &r.Parent},
				r.Author.ID, textMessage("Not relayed to "+ref+": "+why+"."))
		}
		return nil
	}
	m := CaseMessage{Ref: ref, Side: side, Role: RoleExpert, Author: b.named(ctx, r.Author), Text: r.Text, Chat: r.Message}
	if side == SideRequester {
		m.Role, m.Org = RoleMember, w.org.ID
	}
	b.awaitEarlier(ctx, r)
	if strings.TrimSpace(r.Text) != "" {
		err = b.cases.AddMessage(ctx, m)
		var refusal *Refusal
		if errors.As(err, &refusal) {
			if a, ok := b.adapter(r.Author.Platform); ok {
				_ = a.PostPrivate(ctx, Dest{Platform: r.Parent.Platform, Workspace: r.Parent.Workspace, Channel: r.Parent.Channel, Thread: &r.Parent},
					r.Author.ID, textMessage("Not relayed: "+refusal.Msg))
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
	return b.relayFiles(ctx, r, ref, side, w)
}
