package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/outbox"
)

// Asking (issue 14, items 10 to 13): a member's question becomes a case at
// once, unless
//   - the org already has an open case about the same subject: the asker
//     follows it (no credit: the question is added to that case) or opens a
//     new case (one credit);
//   - its alert or incident is one threatdesk does not know: the asker
//     confirms before a credit is spent (Ask anyway, Cancel);
//   - the org has no credits left: the question is kept, and a manager may
//     approve one more case (on the expert desk, or in the answer when the
//     asker is a manager); the case opens when one does, and the approval
//     is on its timeline.
//
// A kept question is a row of bot_pending_ask (migrations/0015), keyed by
// the inbound key of the command or form that asked, so that a retried
// command keeps it once. Buttons carry its id only; the first choice is
// stored by a conditional UPDATE, so a double click or a press on two
// replicas does it once, and opening is keyed on the row ("ask:<id>"), so a
// repeated press never opens a second case. Tenancy: a choice is made by a
// member of the question's org; the case offered to follow is one of that
// org's, found in the org's scope.

// Reasons a question was kept.
const (
	reasonUnknown  = "unknown_subject"
	reasonOpenCase = "open_case"
	reasonNoCredit = "no_credits"
)

// Choices on a kept question.
const (
	choiceOpen    = "open"
	choiceFollow  = "follow"
	choiceCancel  = "cancel"
	choiceApprove = "approve"
)

// Outbox kinds of the approval card on the desk.
const (
	kindApproval        = "bot.approval_needed"
	kindApprovalDecided = "bot.approval_decided"
	targetApproval      = "approval"
)

// Form field of the ask form's priority.
const fieldPriority = "priority"

// pendingAsk is a kept question.
type pendingAsk struct {
	ID          int64
	Key         string
	Reason      string
	Org         string
	Asker       User
	Channel     string
	Subject     Subject
	Question    string
	Priority    string // chosen in the form; "" derived
	ExistingRef string
	Choice      string
	ChosenBy    string
	CaseRef     string
}

func (p pendingAsk) value() string { return "p" + strconv.FormatInt(p.ID, 10) }

func pendingID(v string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(v, "p"), 10, 64)
	return n, err == nil && n > 0 && strings.HasPrefix(v, "p")
}

// askInput is a member's question on its way to becoming a case.
type askInput struct {
	key      string
	subject  Subject
	question string
	channel  string
	thread   *Ref
	// priority is the one chosen in the form (by the asker); "" derived.
	priority string
}

// ask opens a case for a member's question, or keeps the question and
// returns what to choose (the pending message, with buttons).
func (b *Bot) ask(ctx context.Context, w who, in askInput) (CaseView, *Message, error) {
	if w.org == nil {
		return CaseView{}, nil, &Refusal{Msg: "Open cases from your organisation's SOC channel."}
	}
	if in.key == "" {
		in.key = randomKey() // casework deduplicates on the key: never share an empty one
	}
	if p, ok, err := b.pendingByKey(ctx, in.key); err != nil || ok {
		// A retried command: the question is kept already.
		return CaseView{}, ptr(b.pendingMessage(w, p)), err
	}
	s, known := b.describe(ctx, w.org.ID, in.subject)
	question := in.question
	if question == "" {
		question = "(no question given: please describe what you need in the thread)"
	}
	channel := in.channel
	if in.thread != nil && in.thread.Channel != "" {
		channel = in.thread.Channel
	}
	p := pendingAsk{Key: in.key, Org: w.org.ID, Asker: b.named(ctx, w.user), Channel: channel, Subject: s, Question: question, Priority: in.priority}
	if s.Kind != SubjectNone {
		l, err := b.cases.List(ctx, Scope{Org: w.org.ID}, CaseFilter{Which: "open", Subject: &Subject{Kind: s.Kind, ID: s.ID}, Limit: 1})
		if err != nil {
			return CaseView{}, nil, err
		}
		same := false
		if len(l.Cases) > 0 && in.key != "" {
			// This very request, worked again after its case opened, finds
			// that case: opening with the same key returns it. Someone
			// asking the same thing again is offered to follow it.
			ref, ok, err := b.cases.OpenedBy(ctx, w.org.ID, in.key)
			if err != nil {
				return CaseView{}, nil, err
			}
			same = ok && ref == l.Cases[0].Ref
		}
		if len(l.Cases) > 0 && !same {
			p.Reason, p.ExistingRef = reasonOpenCase, l.Cases[0].Ref
			kept, err := b.keepAsk(ctx, p)
			if err != nil {
				return CaseView{}, nil, err
			}
			return CaseView{}, ptr(b.pendingMessage(w, kept)), nil
		}
	}
	if !known && b.hunt != nil && (s.Kind == SubjectAlert || s.Kind == SubjectIncident) {
		p.Reason = reasonUnknown
		kept, err := b.keepAsk(ctx, p)
		if err != nil {
			return CaseView{}, nil, err
		}
		return CaseView{}, ptr(b.pendingMessage(w, kept)), nil
	}
	cv, err := b.cases.Open(ctx, b.openOf(p, in.key, nil))
	if errors.Is(err, ErrNoCredits) {
		p.Reason = reasonNoCredit
		kept, kerr := b.keepAsk(ctx, p)
		if kerr != nil {
			return CaseView{}, nil, kerr
		}
		return CaseView{}, ptr(b.noCreditsMessage(w, kept, err)), nil
	}
	return cv, nil, err
}

// describe enriches a subject from hunting; known is false when hunting
// is wired and does not know it (or is not wired: then nothing is known,
// and nothing is asked).
func (b *Bot) describe(ctx context.Context, org string, s Subject) (Subject, bool) {
	if s.Kind == SubjectNone || b.hunt == nil {
		return s, true
	}
	d, ok, err := b.hunt.Describe(ctx, org, s.Kind, s.ID)
	if err != nil {
		b.log.Warn("could not enrich a case subject; opening without it", "kind", s.Kind, "err", err)
		return s, true // unknown is not the same as unreadable: do not ask
	}
	if !ok {
		return s, false
	}
	d.Kind, d.ID = s.Kind, cmp.Or(d.ID, s.ID) // (a merged incident's is the one it went into)
	return d, true
}

// openOf is the open request of a kept (or about to be kept) question.
func (b *Bot) openOf(p pendingAsk, key string, approvedBy *User) OpenCase {
	o := OpenCase{Key: key, Org: p.Org, Subject: p.Subject, Question: p.Question, Requester: p.Asker,
		Origin: Dest{Platform: p.Asker.Platform, Workspace: p.Asker.Workspace, Channel: p.Channel}, ApprovedBy: approvedBy}
	if p.Priority != "" {
		asker := p.Asker
		o.Priority, o.PriorityBy = p.Priority, &asker
	}
	return o
}

// pendingMessage is what the asker sees of a kept question.
func (b *Bot) pendingMessage(w who, p pendingAsk) Message {
	org := b.orgName(p.Org)
	subj := strings.ToLower(subjectLabel(Subject{Kind: p.Subject.Kind, ID: p.Subject.ID}))
	switch {
	case p.CaseRef != "":
		return textMessage("Your question is with " + p.CaseRef + ".")
	case p.Choice == choiceCancel:
		return textMessage("You cancelled this question: nothing was opened and no credit was used.")
	case p.Reason == reasonUnknown:
		m := Message{Title: "threatdesk does not know this " + string(p.Subject.Kind),
			Text: []Line{
				{T("threatdesk has no " + string(p.Subject.Kind) + " "), U(p.Subject.ID), T(" for " + org + ": it may not have arrived yet, or the id may be mistyped.")},
				{T("Opening a case anyway uses one of " + org + "'s expert credits. Ask anyway?")},
			},
			Buttons: []Button{
				{Action: ActAskAnyway, Label: "Ask anyway (1 credit)", Value: p.value(), Style: ButtonPrimary},
				{Action: ActCancelAsk, Label: "Cancel", Value: p.value()},
			},
			Fallback: "threatdesk does not know " + subj + ": ask anyway?"}
		return m
	case p.Reason == reasonOpenCase:
		return Message{Title: org + " already has an open case about this",
			Text: []Line{
				{B(p.ExistingRef), T(" is about " + string(p.Subject.Kind) + " "), U(subjectText(p.Subject.Kind, p.Subject.ID)), T(".")},
				{B("Follow " + p.ExistingRef), T(": no credit; your question is added to that case and its expert answers there.")},
				{B("Open a new case"), T(": uses one of " + org + "'s expert credits.")},
			},
			Buttons: []Button{
				{Action: ActFollow, Label: "Follow " + p.ExistingRef, Value: p.value(), Style: ButtonPrimary},
				{Action: ActOpenNew, Label: "Open a new case", Value: p.value()},
			},
			Fallback: org + " already has " + p.ExistingRef + " about " + subj}
	case p.Reason == reasonNoCredit:
		return b.noCreditsMessage(w, p, nil)
	}
	return textMessage("Your question is kept.")
}

// noCreditsMessage says that the org has no credits left, that the
// question is kept, and offers a manager the approval.
func (b *Bot) noCreditsMessage(w who, p pendingAsk, cause error) Message {
	org := b.orgName(p.Org)
	head := org + " has no expert credits left this quarter."
	var ref *Refusal
	if errors.As(cause, &ref) {
		// casework's sentence: when the next credits arrive (no org id).
		head = org + ": " + strings.TrimPrefix(ref.Msg, "There are ")
	}
	m := Message{Title: "No expert credits left", Text: []Line{{T(head)}}, Fallback: org + " has no expert credits left"}
	if w.has(RoleManager) {
		m.Text = append(m.Text, Line{T("Your question is kept. As a manager you may approve one more case: it opens without a credit, and your approval is recorded on its timeline.")})
		m.Buttons = []Button{{Action: ActApproveAsk, Label: "Approve one more case", Value: p.value(), Style: ButtonPrimary},
			{Action: ActCancelAsk, Label: "Cancel", Value: p.value()}}
	} else {
		m.Text = append(m.Text, Line{T("Your question is kept, not lost: the managers have been asked on the expert desk to approve one more case, and it opens when one does. You will see its receipt in this channel.")})
		m.Buttons = []Button{{Action: ActCancelAsk, Label: "Cancel", Value: p.value()}}
	}
	return m
}

// choose handles a press on a kept question's buttons.
func (b *Bot) choose(ctx context.Context, w who, a Action) (*Message, error) {
	id, ok := pendingID(a.Value)
	if !ok {
		return nil, &Refusal{Msg: "That button does not name a question."}
	}
	p, err := b.pendingByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.Action == ActApproveAsk {
		return b.approve(ctx, w, p)
	}
	if w.org == nil || w.org.ID != p.Org {
		// Another org's question is reported exactly as a missing one.
		return nil, fmt.Errorf("question %d: %w", id, ErrNotFound)
	}
	choice := map[ActionID]string{ActAskAnyway: choiceOpen, ActOpenNew: choiceOpen, ActFollow: choiceFollow, ActCancelAsk: choiceCancel}[a.Action]
	if a.Action == ActFollow && p.Reason != reasonOpenCase {
		return nil, &Refusal{Msg: "There is no case to follow for this question."}
	}
	by := b.named(ctx, w.user)
	p, won, err := b.claimChoice(ctx, p.ID, choice, userLabel(&by))
	if err != nil {
		return nil, err
	}
	if !won {
		return ptr(b.alreadyChosen(p)), nil
	}
	switch choice {
	case choiceCancel:
		if p.Reason == reasonNoCredit {
			if err := b.decided(ctx, p, "", "Cancelled by "+userLabel(&by)+": nothing was opened."); err != nil {
				return nil, err
			}
		}
		return ptr(textMessage("Cancelled: nothing was opened and no credit was used.")), nil
	case choiceFollow:
		err := b.cases.AddMessage(ctx, CaseMessage{Ref: p.ExistingRef, Org: p.Org, Role: RoleMember, Side: SideRequester, Author: by,
			Text: p.Question, Chat: Ref{Platform: by.Platform, Workspace: by.Workspace, Channel: "ask", Message: p.value()}})
		var refusal *Refusal
		if errors.As(err, &refusal) {
			// The case can take no more (withdrawn or closed meanwhile):
			// the choice is given back, so that Open a new case and
			// Cancel still work for the question.
			if _, rerr := b.db.Exec(ctx, `UPDATE bot_pending_ask SET choice = NULL, chosen_by = '', chosen_at = NULL
WHERE id = $1 AND choice = $2 AND case_ref = ''`, p.ID, choiceFollow); rerr != nil {
				return nil, fmt.Errorf("give back the choice on question %d: %w", p.ID, rerr)
			}
			return nil, &Refusal{Msg: "Cannot follow " + p.ExistingRef + ": " + refusal.Msg + " Open a new case for your question instead, or cancel it.", Err: err}
		}
		if err != nil {
			return nil, err
		}
		if err := b.settleAsk(ctx, p.ID, p.ExistingRef); err != nil {
			return nil, err
		}
		return ptr(textMessage("Added your question to " + p.ExistingRef + ", with no credit used. Its expert answers in the case's thread; /experts status " + p.ExistingRef + " shows where it stands.")), nil
	}
	cv, err := b.cases.Open(ctx, b.openOf(p, "ask:"+strconv.FormatInt(p.ID, 10), nil))
	if errors.Is(err, ErrNoCredits) {
		kept, kerr := b.needApproval(ctx, p)
		if kerr != nil {
			return nil, kerr
		}
		return ptr(b.noCreditsMessage(w, kept, err)), nil
	}
	if err != nil {
		return nil, err
	}
	if err := b.settleAsk(ctx, p.ID, cv.Ref); err != nil {
		return nil, err
	}
	return ptr(textMessage(fmt.Sprintf("Opened %s (%s priority). A threat expert will answer in the thread of its receipt in your channel.", cv.Ref, cv.Priority))), nil
}

// approve opens a kept question's case beyond the org's credits, for a
// manager.
func (b *Bot) approve(ctx context.Context, w who, p pendingAsk) (*Message, error) {
	if !w.has(RoleManager) {
		return nil, &Refusal{Msg: "Only a manager can approve one more case."}
	}
	if p.Reason != reasonNoCredit {
		return nil, &Refusal{Msg: "This question does not wait for an approval."}
	}
	by := b.named(ctx, w.user)
	p, won, err := b.claimChoice(ctx, p.ID, choiceApprove, userLabel(&by))
	if err != nil {
		return nil, err
	}
	if !won {
		return ptr(b.alreadyChosen(p)), nil
	}
	cv, err := b.cases.Open(ctx, b.openOf(p, "ask:"+strconv.FormatInt(p.ID, 10), &by))
	if err != nil {
		return nil, err
	}
	// Settled and told to the desk card together: a retry after a crash
	// between them would find the question settled ("Already done") and
	// the card would keep its button. (The open is keyed: a retry gets
	// the same case.)
	if err := b.decided(ctx, p, cv.Ref, "Approved by "+userLabel(&by)+": "+cv.Ref+" is open."); err != nil {
		return nil, err
	}
	return ptr(textMessage(fmt.Sprintf("Approved: %s is open for %s, beyond its credits. The approval is on the case's timeline.", cv.Ref, b.orgName(p.Org)))), nil
}

// alreadyChosen answers a press on a question whose choice was made.
func (b *Bot) alreadyChosen(p pendingAsk) Message {
	switch {
	case p.CaseRef != "":
		return textMessage("Already done: the question is with " + p.CaseRef + ".")
	case p.Choice == choiceCancel:
		return textMessage("This question was cancelled" + byWhom(p.ChosenBy) + ".")
	}
	return textMessage("This question is being handled" + byWhom(p.ChosenBy) + "; try again in a moment.")
}

func byWhom(name string) string {
	if name == "" {
		return ""
	}
	return " by " + name
}

// ---- store ----

const pendingCols = `id, key, reason, org, asker_platform, asker_workspace, asker_user, asker_name, channel, subject,
 question, priority, existing_ref, coalesce(choice, ''), chosen_by, case_ref`

func scanPending(r pgx.Row, extra ...any) (pendingAsk, error) {
	var p pendingAsk
	var plat string
	var subj []byte
	err := r.Scan(append([]any{&p.ID, &p.Key, &p.Reason, &p.Org, &plat, &p.Asker.Workspace, &p.Asker.ID, &p.Asker.DisplayName, &p.Channel, &subj,
		&p.Question, &p.Priority, &p.ExistingRef, &p.Choice, &p.ChosenBy, &p.CaseRef}, extra...)...)
	if err != nil {
		return p, err
	}
	p.Asker.Platform = Platform(plat)
	if err := json.Unmarshal(subj, &p.Subject); err != nil {
		return p, fmt.Errorf("decode the subject of question %d: %w", p.ID, err)
	}
	return p, nil
}

// keepAsk stores p (once per key: a retry gets the row kept the first
// time). A question kept for want of credits also asks the managers on the
// desk, in the same transaction.
func (b *Bot) keepAsk(ctx context.Context, p pendingAsk) (pendingAsk, error) {
	subj, err := json.Marshal(p.Subject)
	if err != nil {
		return p, fmt.Errorf("encode the subject: %w", err)
	}
	tx, err := b.db.Begin(ctx)
	if err != nil {
		return p, fmt.Errorf("keep question: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var inserted bool
	kept, err := scanPending(tx.QueryRow(ctx, `
INSERT INTO bot_pending_ask (key, reason, org, asker_platform, asker_workspace, asker_user, asker_name, channel, subject, question, priority, existing_ref)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key
RETURNING `+pendingCols+`, xmax = 0`, p.Key, p.Reason, p.Org, string(p.Asker.Platform), p.Asker.Workspace, p.Asker.ID, p.Asker.DisplayName,
		p.Channel, subj, p.Question, p.Priority, p.ExistingRef), &inserted)
	if err != nil {
		return p, fmt.Errorf("keep question: %w", err)
	}
	if inserted && kept.Reason == reasonNoCredit {
		if err := b.appendApproval(ctx, tx, kept); err != nil {
			return p, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return p, fmt.Errorf("keep question: commit: %w", err)
	}
	return kept, nil
}

// needApproval turns a question whose open was refused for want of
// credits into one waiting for a manager (once: the desk is asked once).
func (b *Bot) needApproval(ctx context.Context, p pendingAsk) (pendingAsk, error) {
	tx, err := b.db.Begin(ctx)
	if err != nil {
		return p, fmt.Errorf("keep question for approval: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	kept, err := scanPending(tx.QueryRow(ctx, `UPDATE bot_pending_ask SET reason = $2, choice = NULL, chosen_by = '', chosen_at = NULL
WHERE id = $1 AND reason <> $2 RETURNING `+pendingCols, p.ID, reasonNoCredit))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Already waiting for a manager: free the choice again.
		if _, err := tx.Exec(ctx, `UPDATE bot_pending_ask SET choice = NULL, chosen_by = '', chosen_at = NULL WHERE id = $1 AND case_ref = ''`, p.ID); err != nil {
			return p, fmt.Errorf("keep question for approval: %w", err)
		}
		p.Reason, p.Choice = reasonNoCredit, ""
		kept = p
	case err != nil:
		return p, fmt.Errorf("keep question for approval: %w", err)
	default:
		if err := b.appendApproval(ctx, tx, kept); err != nil {
			return p, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return p, fmt.Errorf("keep question for approval: commit: %w", err)
	}
	return kept, nil
}

func askStream(id int64) string { return "ask:" + strconv.FormatInt(id, 10) }

// approvalEvent is the payload of kindApproval and kindApprovalDecided.
type approvalEvent struct {
	ID       int64  `json:"id"`
	Org      string `json:"org"`
	Asker    string `json:"asker"`
	Subject  string `json:"subject"`
	Question string `json:"question"`
	// Outcome and Ref, when decided.
	Outcome string `json:"outcome,omitempty"`
	Ref     string `json:"ref,omitempty"`
}

func (b *Bot) appendApproval(ctx context.Context, tx pgx.Tx, p pendingAsk) error {
	ev := approvalEvent{ID: p.ID, Org: p.Org, Asker: userLabel(&p.Asker), Subject: subjectLabel(p.Subject), Question: p.Question}
	if _, err := outbox.Append(ctx, tx, outbox.Event{Kind: kindApproval, Stream: askStream(p.ID), Payload: ev}); err != nil {
		return fmt.Errorf("ask the managers for an approval: %w", err)
	}
	return nil
}

// decided edits the desk's approval card to say how the question ended.
func (b *Bot) decided(ctx context.Context, p pendingAsk, ref, outcome string) error {
	tx, err := b.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record the approval's outcome: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if ref != "" {
		if _, err := tx.Exec(ctx, `UPDATE bot_pending_ask SET case_ref = $2 WHERE id = $1`, p.ID, ref); err != nil {
			return fmt.Errorf("record the case of question %d: %w", p.ID, err)
		}
	}
	ev := approvalEvent{ID: p.ID, Org: p.Org, Asker: userLabel(&p.Asker), Subject: subjectLabel(p.Subject), Question: p.Question, Outcome: outcome, Ref: ref}
	if _, err := outbox.Append(ctx, tx, outbox.Event{Kind: kindApprovalDecided, Stream: askStream(p.ID), Payload: ev}); err != nil {
		return fmt.Errorf("record the approval's outcome: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record the approval's outcome: commit: %w", err)
	}
	return nil
}

func (b *Bot) pendingByKey(ctx context.Context, key string) (pendingAsk, bool, error) {
	p, err := scanPending(b.db.QueryRow(ctx, `SELECT `+pendingCols+` FROM bot_pending_ask WHERE key = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("read kept question: %w", err)
	}
	return p, true, nil
}

func (b *Bot) pendingByID(ctx context.Context, id int64) (pendingAsk, error) {
	p, err := scanPending(b.db.QueryRow(ctx, `SELECT `+pendingCols+` FROM bot_pending_ask WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("question %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return p, fmt.Errorf("read kept question %d: %w", id, err)
	}
	return p, nil
}

// claimChoice stores choice on question id unless another choice was made
// first; won is false then, and p is the question as it stands. The same
// choice again (a double click, a retry) wins again: what it does is keyed.
func (b *Bot) claimChoice(ctx context.Context, id int64, choice, by string) (p pendingAsk, won bool, err error) {
	p, err = scanPending(b.db.QueryRow(ctx, `UPDATE bot_pending_ask SET choice = $2, chosen_by = $3, chosen_at = now()
WHERE id = $1 AND (choice IS NULL OR choice = $2) AND case_ref = '' RETURNING `+pendingCols, id, choice, by))
	if errors.Is(err, pgx.ErrNoRows) {
		p, err = b.pendingByID(ctx, id)
		return p, false, err
	}
	if err != nil {
		return p, false, fmt.Errorf("record the choice on question %d: %w", id, err)
	}
	return p, true, nil
}

// settleAsk records the case a question went to.
func (b *Bot) settleAsk(ctx context.Context, id int64, ref string) error {
	if _, err := b.db.Exec(ctx, `UPDATE bot_pending_ask SET case_ref = $2 WHERE id = $1`, id, ref); err != nil {
		return fmt.Errorf("record the case of question %d: %w", id, err)
	}
	return nil
}

// ---- the desk's approval card ----

// renderAsk renders the approval card's events; ok is false for other kinds.
func (b *Bot) renderAsk(row outbox.Row) ([]part, bool, error) {
	if row.Kind != kindApproval && row.Kind != kindApprovalDecided {
		return nil, false, nil
	}
	var ev approvalEvent
	if err := json.Unmarshal(row.Payload, &ev); err != nil {
		return nil, true, &rowError{kind: Permanent, err: fmt.Errorf("decode %s: %w", row.Kind, err)}
	}
	org := b.orgName(ev.Org)
	m := Message{Title: cut("Approve one more case for "+org+"?", maxTitleRunes), Severity: SeverityMedium,
		Text: paragraphs(ev.Question),
		Fields: []Field{{Label: "Org", Value: Line{T(org)}}, {Label: "Asked by", Value: Line{U(ev.Asker)}},
			{Label: "About", Value: Line{U(cut(ev.Subject, maxTitleRunes))}}},
		Footer:   Line{T(org + " has used its expert credits for this quarter. Approving opens the case without a credit; the approval is recorded on the case's timeline.")},
		Fallback: "Approve one more case for " + org + "?",
	}
	if row.Kind == kindApproval {
		m.Buttons = []Button{{Action: ActApproveAsk, Label: "Approve one more case", Value: "p" + strconv.FormatInt(ev.ID, 10), Style: ButtonPrimary}}
		return []part{{key: "card", dest: b.cfg.Desk.DeskDest(), msg: m, anchor: targetApproval}}, true, nil
	}
	m.Title = cut("One more case for "+org, maxTitleRunes)
	m.Severity = SeverityNone
	m.Fields = append(m.Fields, Field{Label: "Outcome", Value: Line{U(ev.Outcome)}})
	return []part{{key: "card", update: targetApproval, msg: m}}, true, nil
}

// ---- priority in the ask form ----

// priorityOptions are the ask form's priority choices.
var priorityOptions = []Option{{Value: "high", Label: "High"}, {Value: "medium", Label: "Medium"}, {Value: "low", Label: "Low"}}

// priorityField is the ask form's priority choice, starting at def.
func priorityField(def string) FormField {
	return FormField{ID: fieldPriority, Label: "Priority (sets the SLA targets)", Kind: InputSelect, Value: def, Options: priorityOptions, Required: true}
}

// askFormFor is the ask form with its priority choice, defaulting to what
// the subject gives (looked up within the acknowledgement's time).
func (b *Bot) askFormFor(ctx context.Context, id string, state map[string][]string, title, org string, s Subject) Form {
	f := askForm(id, state, title, "")
	def := "medium"
	if org != "" && b.hunt != nil && s.Kind != SubjectNone {
		lctx, cancel := context.WithTimeout(ctx, b.cfg.Inbound.StoreTimeout)
		if d, ok, err := b.hunt.Describe(lctx, org, s.Kind, s.ID); err == nil && ok {
			s.Severity = d.Severity
		}
		cancel()
	}
	def = cmp.Or(b.cases.DefaultPriority(s), def)
	f.Fields = append(f.Fields, priorityField(def))
	return f
}

// chosenPriority reads the form's priority: "" when the form had none,
// ok false when it is not one of the choices.
func chosenPriority(values map[string]string) (string, bool) {
	v := strings.ToLower(strings.TrimSpace(values[fieldPriority]))
	if v == "" {
		return "", true // not chosen: the subject's default
	}
	switch v {
	case "high", "medium", "low":
		return v, true
	}
	return "", false
}

// priorityLine is the desk card's priority and who chose it.
func priorityLine(c CaseView) Line {
	if c.PriorityBy != nil {
		return Line{T(c.Priority + " · chosen by "), U(userLabel(c.PriorityBy))}
	}
	return Line{T(c.Priority + " · from the subject")}
}

// deref is *m, or the zero Message.
func deref(m *Message) Message {
	if m == nil {
		return Message{}
	}
	return *m
}

// orgID is the org the caller speaks for, or "".
func orgID(w who) string {
	if w.org == nil {
		return ""
	}
	return w.org.ID
}
