package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/threatdesk/threatdesk/casework"
)

// CaseworkCases adapts casework.Service to the Cases the bot consumes.
type CaseworkCases struct {
	svc *casework.Service
}

var _ Cases = (*CaseworkCases)(nil)

// NewCaseworkCases wraps svc.
func NewCaseworkCases(svc *casework.Service) *CaseworkCases { return &CaseworkCases{svc: svc} }

func viewer(s Scope) casework.Viewer {
	if s.All {
		return casework.AllOrgs()
	}
	return casework.OrgViewer(s.Org)
}

func person(u User) casework.Person {
	return casework.Person{Platform: string(u.Platform), Workspace: u.Workspace, UserID: u.ID, DisplayName: u.DisplayName}
}

func fromPerson(p casework.Person) User {
	return User{Platform: Platform(p.Platform), Workspace: p.Workspace, ID: p.UserID, DisplayName: p.DisplayName}
}

// caseRoles is the casework role a bot role acts with on a case. A member
// of the case's org acts on the requester's side; any other role (an admin,
// none) too, with no more rights than a member.
var caseRoles = map[Role]casework.Role{
	RoleMember:  casework.RoleRequester,
	RoleExpert:  casework.RoleExpert,
	RoleManager: casework.RoleManager,
}

func actor(u User, role Role, org string) casework.Actor {
	r, ok := caseRoles[role]
	if !ok {
		r = casework.RoleRequester
	}
	a := casework.Actor{Role: r, Person: person(u)}
	if r == casework.RoleRequester {
		a.Org = org
	}
	return a
}

// mapErr turns casework's typed errors into the bot's: a Refusal with
// casework's one sentence, or ErrNotFound.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var te *casework.TransitionError
	var nc *casework.NoCreditsError
	var at *casework.AlreadyTakenError
	switch {
	case errors.Is(err, casework.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.As(err, &nc):
		return &Refusal{Msg: sentence(err.Error()), Err: fmt.Errorf("%w: %w", ErrNoCredits, err)}
	case errors.As(err, &te), errors.As(err, &at):
		return &Refusal{Msg: sentence(err.Error()), Err: err}
	case errors.Is(err, casework.ErrInvalid):
		return &Refusal{Msg: sentence(err.Error()), Err: err}
	}
	return err
}

func sentence(s string) string {
	if s == "" {
		return s
	}
	if c := s[len(s)-1]; c != '.' && c != '!' && c != '?' {
		s += "."
	}
	return s
}

func caseView(c *casework.Case) CaseView {
	v := CaseView{
		Ref: c.Ref, Org: c.Org,
		Subject:  Subject{Kind: SubjectKind(c.Subject.Kind), ID: c.Subject.ID, Name: c.Subject.Name, Link: c.Subject.Link, Severity: c.Subject.Severity},
		Category: string(c.Category), Question: c.Question, Priority: string(c.Priority), Status: Status(c.Status),
		Requester: fromPerson(c.Requester), Summary: c.Summary, OpenedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, StatusAt: c.StatusAt,
		SLA:    SLAView{Paused: c.Status.WaitingOnRequester(), AtRisk: c.AtRisk, Breached: c.Breached},
		Origin: Dest{Platform: Platform(c.Origin.Platform), Workspace: c.Origin.Workspace, Channel: c.Origin.Channel},
	}
	if c.DueAt != nil {
		v.SLA.Due = *c.DueAt
	}
	if !c.Assignee.IsZero() {
		a := fromPerson(c.Assignee)
		v.Assignee = &a
	}
	if !c.PriorityBy.IsZero() {
		p := fromPerson(c.PriorityBy)
		v.PriorityBy = &p
	}
	return v
}

// Open implements Cases.
func (cw *CaseworkCases) Open(ctx context.Context, o OpenCase) (CaseView, error) {
	if o.Subject.Detail != "" {
		// casework keeps a name, not details: fold them in.
		o.Subject.Name = cmp.Or(o.Subject.Name, o.Subject.ID) + " (" + o.Subject.Detail + ")"
	}
	req := casework.OpenRequest{
		Key: o.Key, Org: o.Org,
		Subject:  casework.Subject{Kind: casework.SubjectKind(o.Subject.Kind), ID: o.Subject.ID, Name: o.Subject.Name, Link: o.Subject.Link, Severity: o.Subject.Severity},
		Question: o.Question, Requester: person(o.Requester), // casework gives the category (CategoryFor)
		Origin:   casework.Place{Platform: string(o.Origin.Platform), Workspace: o.Origin.Workspace, Channel: o.Origin.Channel},
		Priority: casework.Priority(o.Priority),
	}
	if o.Priority != "" && o.PriorityBy != nil {
		req.PriorityBy = person(*o.PriorityBy)
	}
	if o.ApprovedBy != nil {
		a := actor(*o.ApprovedBy, RoleManager, "")
		req.ApprovedBy = &a
	}
	c, _, err := cw.svc.Open(ctx, req)
	if err != nil {
		return CaseView{}, mapErr(err)
	}
	return caseView(c), nil
}

// OpenedBy implements Cases.
func (cw *CaseworkCases) OpenedBy(ctx context.Context, org, key string) (string, bool, error) {
	return cw.svc.OpenedBy(ctx, org, key)
}

// Get implements Cases.
func (cw *CaseworkCases) Get(ctx context.Context, s Scope, ref string) (CaseView, error) {
	c, err := cw.svc.Get(ctx, viewer(s), ref)
	if err != nil {
		return CaseView{}, mapErr(err)
	}
	return caseView(c), nil
}

// listFilter is casework's filter for a list f in scope s.
func listFilter(s Scope, f CaseFilter) casework.ListFilter {
	lf := casework.ListFilter{Limit: f.Limit}
	if !s.All {
		lf.Org = s.Org
	}
	switch f.Which {
	case "open", "":
		lf.Statuses = casework.OpenStatuses()
	case "new":
		lf.Statuses = []casework.Status{casework.StatusNew}
	case "mine":
		lf.Statuses = casework.OpenStatuses()
		lf.Assignee = f.Assignee
		if f.Requester != nil {
			lf.Requester, lf.RequesterPlatform = f.Requester.ID, string(f.Requester.Platform)
		}
	case "breaching":
		lf.Breaching = true
	}
	if f.Subject != nil {
		lf.SubjectKind, lf.SubjectID = casework.SubjectKind(f.Subject.Kind), f.Subject.ID
	}
	return lf
}

// List implements Cases.
func (cw *CaseworkCases) List(ctx context.Context, s Scope, f CaseFilter) (CaseList, error) {
	p, err := cw.svc.List(ctx, viewer(s), listFilter(s, f))
	if err != nil {
		return CaseList{}, mapErr(err)
	}
	out := CaseList{More: max(p.Total-len(p.Cases), 0)}
	for i := range p.Cases {
		out.Cases = append(out.Cases, caseView(&p.Cases[i]))
	}
	return out, nil
}

// Take implements Cases.
func (cw *CaseworkCases) Take(ctx context.Context, ref string, expert User, key string) (CaseView, error) {
	c, err := cw.svc.TakeKeyed(ctx, ref, actor(expert, RoleExpert, ""), key)
	if err != nil {
		return CaseView{}, mapErr(err)
	}
	return caseView(c), nil
}

// TakenWith implements Cases.
func (cw *CaseworkCases) TakenWith(ctx context.Context, expert User, key string) (string, bool, error) {
	return cw.svc.TakenWith(ctx, actor(expert, RoleExpert, "").Person, key)
}

// Assign implements Cases.
func (cw *CaseworkCases) Assign(ctx context.Context, ref string, expert, by User, role Role) (CaseView, error) {
	c, err := cw.svc.Assign(ctx, ref, actor(by, role, ""), person(expert))
	if err != nil {
		return CaseView{}, mapErr(err)
	}
	return caseView(c), nil
}

// Transition implements Cases.
func (cw *CaseworkCases) Transition(ctx context.Context, s Scope, ref string, to Status, by User, role Role, text, key string) (CaseView, error) {
	req := casework.TransitionRequest{Ref: ref, To: casework.Status(to), Actor: actor(by, role, s.Org), Key: key}
	if to == StatusConcluded {
		req.Summary = text
	} else {
		req.Note = text
	}
	if !s.All {
		// A member acts on its own org's cases only: check before asking.
		if _, err := cw.svc.Get(ctx, viewer(s), ref); err != nil {
			return CaseView{}, mapErr(err)
		}
	}
	c, err := cw.svc.Transition(ctx, req)
	if err != nil {
		return CaseView{}, mapErr(err)
	}
	return caseView(c), nil
}

// LastMessage implements Cases.
func (cw *CaseworkCases) LastMessage(ctx context.Context, s Scope, ref string) (time.Time, Side, error) {
	ms, err := cw.svc.Messages(ctx, viewer(s), ref)
	if err != nil {
		return time.Time{}, "", mapErr(err)
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if !ms[i].Internal {
			return ms[i].CreatedAt, Side(ms[i].Side), nil
		}
	}
	return time.Time{}, "", nil
}

// AddMessage implements Cases.
func (cw *CaseworkCases) AddMessage(ctx context.Context, m CaseMessage) error {
	role := m.Role
	if role == "" {
		role = RoleExpert
		if m.Side == SideRequester {
			role = RoleMember
		}
	}
	_, err := cw.svc.AddMessage(ctx, casework.MessageRequest{
		Ref: m.Ref, Actor: actor(m.Author, role, m.Org), Side: casework.Side(m.Side), Text: m.Text, Internal: m.Internal,
		Chat: casework.ChatRef{Platform: string(m.Chat.Platform), Workspace: m.Chat.Workspace, Channel: m.Chat.Channel, Message: m.Chat.Message},
	})
	return mapErr(err)
}

// DefaultPriority implements Cases: casework's DerivePriority.
func (cw *CaseworkCases) DefaultPriority(s Subject) string {
	k := casework.SubjectKind(s.Kind)
	return string(casework.DerivePriority(casework.Subject{Kind: k, ID: s.ID, Severity: s.Severity}, casework.CategoryFor(k)))
}

// Credits implements Cases.
func (cw *CaseworkCases) Credits(ctx context.Context, org string) (Credits, error) {
	b, err := cw.svc.Credits(ctx, casework.OrgViewer(org), org)
	if err != nil {
		return Credits{}, mapErr(err)
	}
	return Credits{Org: b.Org, Balance: b.Balance, Allowance: b.PerQuarter, ResetsAt: b.ResetsAt}, nil
}

// DecodeEvent implements Cases.
func (cw *CaseworkCases) DecodeEvent(kind string, payload json.RawMessage) (CaseEvent, bool, error) {
	var ev CaseEvent
	dec := func(v any) error { return json.Unmarshal(payload, v) }
	switch kind {
	case casework.EventOpened:
		var p casework.OpenedEvent
		if err := dec(&p); err != nil {
			return ev, true, err
		}
		return CaseEvent{Kind: CaseOpened, Ref: p.Ref, Actor: p.Requester.Name(), Side: SideRequester}, true, nil
	case casework.EventAssigned:
		var p casework.AssignedEvent
		if err := dec(&p); err != nil {
			return ev, true, err
		}
		a := fromPerson(p.Assignee)
		ev = CaseEvent{Kind: CaseAssigned, Ref: p.Ref, Actor: p.Assignee.Name(), Side: SideExpert, Assignee: &a}
		if !p.Taken {
			ev.Detail = "assigned by " + p.By.Name()
			if p.By.Platform != p.Assignee.Platform || p.By.UserID != p.Assignee.UserID {
				ev.By = p.By.Name() // not to themselves
			}
		}
		return ev, true, nil
	case casework.EventMessageAdded:
		var p casework.MessageAddedEvent
		if err := dec(&p); err != nil {
			return ev, true, err
		}
		ev = CaseEvent{Kind: CaseMessaged, Ref: p.Ref, Actor: p.Author.Name(), ActorID: p.Author.UserID, Side: Side(p.Side), Text: p.Text, Internal: p.Internal}
		if p.Source != nil {
			ev.Chat = Ref{Platform: Platform(p.Source.Platform), Workspace: p.Source.Workspace, Channel: p.Source.Channel, Message: p.Source.Message}
		}
		return ev, true, nil
	case casework.EventStatusChanged:
		var p casework.StatusChangedEvent
		if err := dec(&p); err != nil {
			return ev, true, err
		}
		ev = CaseEvent{Kind: CaseStatus, Ref: p.Ref, Actor: p.By.Name(), From: Status(p.From), To: Status(p.To), Text: p.Note}
		if p.To == casework.StatusConcluded {
			ev.Text = p.Summary
		}
		switch {
		case p.Resumed:
			ev.Detail = "The requester answered; the SLA clock runs again."
		case p.Reopened:
			ev.Detail = "Reopened."
		}
		if p.By.Role == casework.RoleSystem {
			ev.Actor = ""
		}
		return ev, true, nil
	case casework.EventSLAWarning, casework.EventSLABreach:
		var p casework.SLAEvent
		if err := dec(&p); err != nil {
			return ev, true, err
		}
		k := CaseSLAWarning
		if kind == casework.EventSLABreach {
			k = CaseSLABreach
		}
		clock := "first response"
		if p.Clock == casework.ClockConclusion {
			clock = "conclusion"
		}
		target := time.Duration(p.TargetSeconds) * time.Second
		return CaseEvent{Kind: k, Ref: p.Ref, Detail: fmt.Sprintf("%s target of %s (%s priority)", clock, duration(target), p.Priority),
			SLA: &SLANotice{Clock: clock, Target: target, Priority: string(p.Priority), Due: p.DueAt, Paused: p.Paused,
				Left: target - time.Duration(p.ElapsedSeconds)*time.Second}}, true, nil
	case casework.EventPaged:
		var p casework.PagedEvent
		if err := dec(&p); err != nil {
			return ev, true, err
		}
		at := p.PagedAt
		if at.IsZero() {
			at = p.OpenedAt.Add(time.Duration(p.WaitedSeconds) * time.Second)
		}
		return CaseEvent{Kind: CasePaged, Ref: p.Ref, Since: p.OpenedAt, Waited: time.Duration(p.WaitedSeconds) * time.Second, At: at}, true, nil
	case casework.EventReminded:
		var p casework.RemindedEvent
		if err := dec(&p); err != nil {
			return ev, true, err
		}
		return CaseEvent{Kind: CaseReminded, Ref: p.Ref, To: Status(p.Status), Since: p.WaitingSince,
			Waited: time.Duration(p.WaitedSeconds) * time.Second}, true, nil
	case casework.EventCreditsChanged:
		var p casework.CreditsChangedEvent
		if err := dec(&p); err != nil {
			return ev, true, err
		}
		return CaseEvent{Kind: CaseCredits, Ref: p.Ref, Detail: p.Reason}, true, nil
	case casework.EventSampleStored:
		var p casework.SampleStoredEvent
		if err := dec(&p); err != nil {
			return ev, true, err
		}
		return decodeSampleStored(p), true, nil
	}
	return ev, false, nil
}
