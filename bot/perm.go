package bot

import "strings"

// Role is what a user is to the bot. A user may hold several: an expert who
// types in an org's channel is also that org's member.
type Role string

// Roles.
const (
	// RoleMember is anyone speaking in an org's channel (or in a thread of
	// one): the org's analysts. It acts for that org only.
	RoleMember  Role = "member"
	RoleExpert  Role = "expert"
	RoleManager Role = "manager"
	RoleAdmin   Role = "admin"
)

// op is something a user asks the bot to do: a command, a button or a reply.
type op string

// Operations. Buttons share their command's op where there is one.
const (
	opOpen         op = "open case" // ask, alert, device, file, incident, Consult
	opStatus       op = "status"
	opCases        op = "cases"
	opCasesAnyOrg  op = "cases of any org"
	opCredits      op = "credits"
	opHelp         op = "help"
	opTake         op = "take"
	opAssign       op = "assign"
	opExpertStatus op = "expert status" // more-info, sample, more-time, conclude
	opNote         op = "note"
	opSampleNotify op = "sample notification"
	opAddDetails   op = "add details"
	opClose        op = "close"    // a concluded case: its requester or a manager (casework checks who asked)
	opReopen       op = "reopen"   // as close
	opWithdraw     op = "withdraw" // an open case: its requester only (casework checks who asked)
	opAcknowledge  op = "acknowledge"
	opShowScope    op = "show scope"
	opRelayAsker   op = "reply in requester thread"
	opRelayExpert  op = "reply in desk thread"
	opReport       op = "report"
	opExport       op = "export"
	opVerify       op = "verify"
	// Incidents worked from chat (incidents.go): Resolve from the card,
	// Notify now a quiet incident, list incidents (any org's: experts and
	// managers).
	opResolve         op = "resolve incident"
	opNotifyNow       op = "notify now"
	opIncidents       op = "incidents"
	opIncidentsAnyOrg op = "incidents of any org"
	opUpload          op = "get an upload link"         // /experts upload: a member of the case's org
	opDownload        op = "download file samples"      // Download sample
	opChooseAsk       op = "choose for a kept question" // Ask anyway, Follow, Open a new case, Cancel
	opApproveAsk      op = "approve one more case"
	opOncall          op = "see who is on call"
	opOncallTake      op = "take the pager"
	opCampaign        op = "work campaigns" // /experts campaign, the desk card's Tag campaign (insight.go)
)

// permissions is who may do what: the one table. Tenancy (a member acts for
// its own org only) is checked on top, against the case or incident's org.
var permissions = map[op][]Role{
	opOpen:         {RoleMember},
	opStatus:       {RoleMember, RoleExpert, RoleManager},
	opCases:        {RoleMember, RoleExpert, RoleManager},
	opCasesAnyOrg:  {RoleExpert, RoleManager},
	opCredits:      {RoleMember, RoleManager},
	opHelp:         {RoleMember, RoleExpert, RoleManager, RoleAdmin},
	opTake:         {RoleExpert},
	opAssign:       {RoleExpert, RoleManager},
	opExpertStatus: {RoleExpert},
	opNote:         {RoleExpert},
	opSampleNotify: {RoleAdmin},
	opAddDetails:   {RoleMember},
	opClose:        {RoleMember, RoleManager},
	opReopen:       {RoleMember, RoleManager},
	opWithdraw:     {RoleMember},
	opAcknowledge:  {RoleMember},
	opShowScope:    {RoleMember, RoleExpert, RoleManager},
	opRelayAsker:   {RoleMember},
	opRelayExpert:  {RoleExpert},
	opReport:       {RoleMember, RoleExpert, RoleManager},
	opExport:       {RoleMember, RoleExpert, RoleManager},
	opVerify:       {RoleMember, RoleExpert, RoleManager},
	// Resolving is the SOC's decision (the org's members, from the card) or
	// a threat expert's; managers oversee the expert service and do not
	// close a customer's incidents.
	opResolve:         {RoleMember, RoleExpert},
	opNotifyNow:       {RoleMember, RoleExpert},
	opIncidents:       {RoleMember, RoleExpert, RoleManager},
	opIncidentsAnyOrg: {RoleExpert, RoleManager},
	opUpload:          {RoleMember},
	opDownload:        {RoleExpert},
	opChooseAsk:       {RoleMember},
	opApproveAsk:      {RoleManager},
	opOncall:          {RoleExpert, RoleManager},
	opOncallTake:      {RoleExpert},
	opWeb:             {RoleMember, RoleExpert, RoleManager},
	opCampaign:        {RoleExpert},
	opInstallLink:     {RoleAdmin},
	opReload:          {RoleAdmin},
	opWorkspaces:      {RoleAdmin},
}

// who is the caller as the bot sees them: roles and, for members, the org.
type who struct {
	user  User
	roles []Role
	org   *Org // the org whose channel the caller spoke in
	desk  bool // spoke in the desk channel
	// readOnly is the org whose channel the caller acted in without being
	// allowed to write there (User.ReadOnly): no member of it.
	readOnly *Org
}

func (w who) has(r Role) bool {
	for _, x := range w.roles {
		if x == r {
			return true
		}
	}
	return false
}

// may reports whether the caller holds a role the table allows for o.
func (w who) may(o op) bool {
	for _, r := range permissions[o] {
		if w.has(r) {
			return true
		}
	}
	return false
}

// role is the strongest role the caller has for o (for casework's checks).
func (w who) roleFor(o op) Role {
	for _, r := range []Role{RoleExpert, RoleManager, RoleMember, RoleAdmin} {
		if w.has(r) {
			for _, x := range permissions[o] {
				if x == r {
					return r
				}
			}
		}
	}
	return ""
}

// scope is what the caller may see: all orgs for experts and managers, the
// caller's org for a member, nothing otherwise.
func (w who) scope() (Scope, bool) {
	if w.has(RoleExpert) || w.has(RoleManager) {
		return Scope{All: true}, true
	}
	if w.org != nil {
		return Scope{Org: w.org.ID}, true
	}
	return Scope{}, false
}

// scopeFor is the scope to act in with role: a member (requester) acts
// inside the org of the channel they speak in, even when they are also an
// expert or a manager who may see every org.
func (w who) scopeFor(r Role) Scope {
	if r == RoleMember && w.org != nil {
		return Scope{Org: w.org.ID}
	}
	s, _ := w.scope()
	return s
}

// staffWorkspace reports whether u speaks from where the provider's staff
// (experts, managers, admins) are: on Slack, with customer workspaces
// installed, a user id is only that person within its workspace, so the
// staff roles hold only in the desk's workspace (when the config names
// it). Discord ids are global.
func (b *Bot) staffWorkspace(u User) bool {
	if u.Platform != Slack || b.cfg.Desk.Slack == nil || b.cfg.Desk.Slack.Team == "" || u.Workspace == "" {
		return true
	}
	return u.Workspace == b.cfg.Desk.Slack.Team
}

// identify works out who is speaking from where.
func (b *Bot) identify(u User, channel string, thread *Ref) who {
	w := who{user: u}
	staff := b.staffWorkspace(u)
	if staff && b.cfg.Experts.Has(u.Platform, u.ID) {
		w.roles = append(w.roles, RoleExpert)
	}
	if staff && b.cfg.Managers.Has(u.Platform, u.ID) {
		w.roles = append(w.roles, RoleManager)
	}
	if staff && b.cfg.Admins.Has(u.Platform, u.ID) {
		w.roles = append(w.roles, RoleAdmin)
	}
	chans := []string{channel}
	if thread != nil {
		chans = append(chans, thread.Channel)
	}
	desk := b.cfg.Desk.DeskDest()
	for _, ch := range chans {
		if ch == "" {
			continue
		}
		if o, ok := b.cfg.orgFor(u.Platform, u.Workspace, ch); ok {
			if u.ReadOnly {
				w.readOnly = o
				break
			}
			w.org = o
			w.roles = append(w.roles, RoleMember)
			break
		}
		if desk.Platform == u.Platform && desk.Channel == ch && (desk.Workspace == "" || strings.EqualFold(desk.Workspace, u.Workspace)) {
			w.desk = true
		}
	}
	return w
}

// rolesText names roles for help and errors.
// rolesText names who holds any of rs, for a refusal: "threat experts and
// managers".
func rolesText(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = roleNames[r]
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// roleNames are the roles as a refusal names their holders.
var roleNames = map[Role]string{
	RoleMember:  "members of an organisation's SOC (in its SOC channel)",
	RoleExpert:  "threat experts",
	RoleManager: "managers of the expert service",
	RoleAdmin:   "threatdesk admins",
}

// phrase is o as a refusal says it ("Only threat experts can take a
// case."): the op's own words, unless they read as a name.
func (o op) phrase() string {
	if p, ok := opPhrases[o]; ok {
		return p
	}
	return string(o)
}

var opPhrases = map[op]string{
	opOpen:            "open a case",
	opStatus:          "see a case's status",
	opCases:           "list cases",
	opCasesAnyOrg:     "list another organisation's cases",
	opCredits:         "see the credits",
	opHelp:            "see the help",
	opTake:            "take a case",
	opAssign:          "assign a case",
	opExpertStatus:    "ask for more information, a sample or more time, or conclude a case",
	opNote:            "add an internal note",
	opSampleNotify:    "send a test notification",
	opAddDetails:      "add details to a case",
	opClose:           "close a case",
	opReopen:          "reopen a case",
	opWithdraw:        "withdraw a case",
	opAcknowledge:     "acknowledge an incident",
	opShowScope:       "show an incident's full scope",
	opRelayAsker:      "write to the experts in a case's thread",
	opRelayExpert:     "answer in a desk card's thread",
	opReport:          "see the service report",
	opExport:          "export a case's record",
	opVerify:          "verify a case's timeline",
	opResolve:         "resolve an incident",
	opNotifyNow:       "post an incident as a notification",
	opIncidents:       "list incidents",
	opIncidentsAnyOrg: "list another organisation's incidents",
}
