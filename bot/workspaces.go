package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/threatdesk/threatdesk/internal/outbox"
)

// Many customer workspaces (issue 18). An admin asks for an install link
// for an org ("/experts install-link <org>", answered privately in the
// acknowledgement: the link is never stored as text); the Slack adapter
// makes it (Installer, handed to the bot by cmd with UseInstaller) and runs
// the Add to Slack flow. When a workspace installs or removes the app, the
// adapter records it and, in the same transaction, a WorkspaceNotice for
// the desk (an outbox event this package renders): the admins are told
// there.

// Verbs and operations of the admins' workspace commands.
const (
	vInstallLink               = "install-link"
	opInstallLink           op = "make Add to Slack install links"
	vWorkspaces                = "workspaces"
	opWorkspaces            op = "list the Slack workspaces that added threatdesk"
	kindWorkspace              = "bot.workspace"
	workspaceInstallTimeout    = 2 * time.Second
	installOrgHint             = "Usage: /experts install-link <org id>"
)

// Installer makes install links for customer workspaces (adapters/slack).
type Installer interface {
	// InstallLink returns a link that installs the app for org, made by
	// by; it works once, until ExpiresAt.
	InstallLink(ctx context.Context, org string, by User) (InstallLink, error)
	// Installed lists the workspaces that added the app, removed ones
	// included.
	Installed(ctx context.Context) ([]Installed, error)
}

// Installed is a workspace that added the app, as recorded.
type Installed struct {
	// Workspace is the Slack team id; WorkspaceName its name, as Slack
	// gave it (the customer's text).
	Workspace, WorkspaceName string
	// Org is the org whose install link was used.
	Org string
	// InstalledBy is the Slack user who approved the install.
	InstalledBy string
	InstalledAt time.Time
	// Active is false once the workspace removed the app or revoked its
	// token (InactiveWhy: app_uninstalled, tokens_revoked), at InactiveAt.
	Active      bool
	InactiveAt  time.Time
	InactiveWhy string
	// Own marks the provider's own workspace, SLACK_BOT_TOKEN's: it needs
	// no install (only Workspace is set).
	Own bool
}

// InstallLink is an install link: its URL, when it stops working, and a
// note to show with it ("" or that it only works on this machine).
type InstallLink struct {
	URL       string
	ExpiresAt time.Time
	Note      string
}

// UseInstaller hands the bot the Add to Slack link maker; without one,
// "/experts install-link" says Add to Slack is not set up. Call it before
// the adapters start.
func (b *Bot) UseInstaller(i Installer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.installer = i
}

func (b *Bot) installerOf() Installer {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.installer
}

// OrgPlace is an org as the running config places it on one platform.
type OrgPlace struct {
	// Name is the org's display name.
	Name string
	// Workspace and Channels are its place on the platform; empty when the
	// org has none there (yet).
	Workspace string
	Channels  []string
}

// OrgPlace returns org's name and its place on p by the running config;
// ok is false for an org that is not configured.
func (b *Bot) OrgPlace(p Platform, org string) (OrgPlace, bool) {
	b = b.current()
	o, ok := b.cfg.org(org)
	if !ok {
		return OrgPlace{}, false
	}
	out := OrgPlace{Name: o.Name}
	if pl := o.place(p); pl != nil {
		out.Workspace, out.Channels = pl.Workspace, append([]string(nil), pl.Channels...)
	}
	return out, true
}

// installAck answers "/experts install-link <org>" privately with a link,
// inside the acknowledgement.
func (b *Bot) installAck(ctx context.Context, c Command, r request) Ack {
	if c.User.Platform != Slack {
		return Ack{Message: ptr(textMessage("/experts install-link is for Slack only: it adds threatdesk to a customer's Slack workspace. A Discord server adds threatdesk with the bot's invite link (OAuth2 URL Generator in the Discord developer portal), and its guild and channels go in the config.")), Private: true}
	}
	in := b.installerOf()
	if in == nil {
		return Ack{Message: ptr(textMessage("Add to Slack is not set up: set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (the Slack app's credentials) and THREATDESK_PUBLIC_URL, then restart threatdesk.")), Private: true}
	}
	o, ok := b.cfg.org(r.org)
	if !ok {
		return Ack{Message: ptr(textMessage(fmt.Sprintf("%q is not an org: the org ids are %s. %s.", r.org, b.orgIDs(), installOrgHint))), Private: true}
	}
	if o.Slack == nil || o.Slack.Team == "" {
		// Without its workspace, any workspace would take the link and be
		// linked to this org, locking out the org that owns it.
		return Ack{Message: ptr(textMessage(fmt.Sprintf("%s has no Slack workspace in the config: set orgs[].slack.team (and its channels) for %s, reload, and ask again.", o.Name, o.ID))), Private: true}
	}
	u := c.User
	if u.DisplayName == "" {
		nctx, cancel := context.WithTimeout(ctx, webNameWait)
		u = b.named(nctx, u)
		cancel()
	}
	ictx, cancel := context.WithTimeout(ctx, workspaceInstallTimeout)
	defer cancel()
	link, err := in.InstallLink(ictx, o.ID, u)
	if err != nil {
		b.log.Error("could not make an install link", "org", o.ID, "err", err)
		return Ack{Message: ptr(textMessage("The install link could not be made; nothing was changed. Try again in a minute.")), Private: true}
	}
	m := installLinkMessage(o, link)
	return Ack{Message: &m, Private: true}
}

// installLinkMessage is the private answer carrying an install link.
func installLinkMessage(o *Org, link InstallLink) Message {
	text := []Line{
		{L("Add threatdesk to "+o.Name+"'s Slack", link.URL), T(": send this link to " + o.Name + "'s Slack admin.")},
		{T("It installs threatdesk for " + o.Name + " (" + o.ID + ") only, works once, and expires at " +
			link.ExpiresAt.UTC().Format("15:04 UTC") + " (in " + duration(time.Until(link.ExpiresAt)) + "). Treat it like a password.")},
	}
	if o.Slack != nil {
		text = append(text, Line{T("It must be installed in the workspace " + o.Slack.Team + " (orgs[].slack.team); another workspace is refused.")})
	} else {
		text = append(text, Line{T(o.Name + " has no Slack workspace in the config yet: once it is installed, add slack: {team, channels} to the org in the config file and run /experts reload.")})
	}
	if link.Note != "" {
		text = append(text, Line{T(link.Note)})
	}
	return Message{Title: "Install link for " + o.Name, Text: text, Fallback: "Add to Slack link for " + o.Name}
}

// WorkspaceChangeKind is what happened to a workspace's installation.
type WorkspaceChangeKind string

// Workspace changes.
const (
	WorkspaceInstalled   WorkspaceChangeKind = "installed"
	WorkspaceUninstalled WorkspaceChangeKind = "uninstalled"
)

// WorkspaceChange is a chat workspace adding or removing threatdesk.
type WorkspaceChange struct {
	Kind     WorkspaceChangeKind `json:"kind"`
	Platform Platform            `json:"platform"`
	// Workspace is the team id; WorkspaceName its name.
	Workspace     string `json:"workspace"`
	WorkspaceName string `json:"workspace_name,omitempty"`
	// Org is the org it is installed for.
	Org string `json:"org,omitempty"`
	// By is who approved the install (a user of the workspace); LinkBy who
	// made the install link.
	By     string `json:"by,omitempty"`
	LinkBy string `json:"link_by,omitempty"`
	// Reason is what the platform said (app_uninstalled, tokens_revoked).
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// WorkspaceNotice is the outbox event that tells the admins on the desk
// about c. Adapters append it in the transaction that records c.
func WorkspaceNotice(c WorkspaceChange) outbox.Event {
	return outbox.Event{Kind: kindWorkspace, Stream: "workspace:" + string(c.Platform) + ":" + c.Workspace, Payload: c}
}

// renderWorkspace renders kindWorkspace: a note on the desk mentioning the
// admins who are on the desk's platform.
func (b *Bot) renderWorkspace(ctx context.Context, kind string, payload json.RawMessage) ([]part, bool, error) {
	if kind != kindWorkspace {
		return nil, false, nil
	}
	var c WorkspaceChange
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, true, &rowError{kind: Permanent, err: fmt.Errorf("decode %s: %w", kind, err)}
	}
	desk := b.cfg.Desk.DeskDest()
	if desk.Channel == "" {
		return nil, true, &rowError{kind: Permanent, err: fmt.Errorf("no desk in the config to tell about workspace %s", c.Workspace)}
	}
	m := b.workspaceMessage(c)
	m = b.mentionAdmins(ctx, m, desk.Platform)
	return []part{{key: "desk", dest: desk, msg: m}}, true, nil
}

// workspaceMessage says what happened to a workspace and what to do.
func (b *Bot) workspaceMessage(c WorkspaceChange) Message {
	ws := c.Workspace
	if c.WorkspaceName != "" && !strings.EqualFold(c.WorkspaceName, c.Workspace) {
		ws = c.WorkspaceName + " (" + c.Workspace + ")"
	}
	org := b.orgName(c.Org)
	var lines []Line
	switch c.Kind {
	case WorkspaceInstalled:
		first := Line{T("The Slack workspace "), U(ws), T(" added threatdesk for "), B(org)}
		if c.By != "" {
			first = append(first, T(" (approved by their user "), U(c.By), T(")"))
		}
		lines = append(lines, append(first, T(".")))
		if o, ok := b.cfg.org(c.Org); ok && o.Slack != nil && strings.EqualFold(o.Slack.Team, c.Workspace) {
			lines = append(lines, Line{T("Its channels in the config now act for " + org + ": invite @threatdesk there, then /experts help.")})
		} else {
			lines = append(lines, Line{T("Add slack: {team: " + c.Workspace + ", channels: [...]} to org " + c.Org + " in the config file and run /experts reload, so that its channels act for " + org + ".")})
		}
		return Message{Title: "Slack workspace added", Text: lines, Fallback: "Slack workspace " + c.Workspace + " added threatdesk for " + c.Org}
	default:
		why := c.Reason
		if why == "" {
			why = "uninstalled"
		}
		lines = append(lines,
			Line{T("The Slack workspace "), U(ws), T(" of "), B(org), T(" removed threatdesk ("), U(why), T(").")},
			Line{T("Nothing more is sent there: its cases' messages are counted dead. To restore it, send their Slack admin a fresh link: /experts install-link " + c.Org + ".")})
		return Message{Title: "Slack workspace removed threatdesk", Text: lines, Fallback: "Slack workspace " + c.Workspace + " removed threatdesk"}
	}
}

// mentionAdmins returns m with the admins who are on platform mentioned in
// a last line; the others are named.
func (b *Bot) mentionAdmins(ctx context.Context, m Message, p Platform) Message {
	var ids []string
	switch p {
	case Slack:
		ids = b.cfg.Admins.Slack
	case Discord:
		ids = b.cfg.Admins.Discord
	}
	if len(ids) == 0 {
		return m
	}
	line := Line{T("Admins: ")}
	for i, id := range ids {
		if i > 0 {
			line = append(line, T(", "))
		}
		span, mid := b.personOf(ctx, p, id).on(p)
		line = append(line, span)
		if mid != "" {
			m.Mentions = append(m.Mentions, mid)
		}
	}
	m.Text = append(m.Text, line)
	return m
}

// workspacesCommand answers "/experts workspaces" (admins): the customer
// workspaces that added threatdesk, those that removed it, and the orgs
// whose workspace has not added it yet, each with what to do.
func (b *Bot) workspacesCommand(ctx context.Context) (Message, error) {
	in := b.installerOf()
	if in == nil {
		return textMessage("Add to Slack is not set up, so every org's Slack channels must be in the desk's own workspace (SLACK_BOT_TOKEN). To add customer workspaces, set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (the Slack app's credentials) and THREATDESK_PUBLIC_URL, then restart threatdesk."), nil
	}
	ictx, cancel := context.WithTimeout(ctx, workspaceInstallTimeout)
	defer cancel()
	list, err := in.Installed(ictx)
	if err != nil {
		return Message{}, fmt.Errorf("list the installed workspaces: %w", err)
	}
	desk := ""
	if b.cfg.Desk.Slack != nil {
		desk = b.cfg.Desk.Slack.Team
	}
	for _, w := range list {
		if w.Own {
			desk = cmp.Or(desk, w.Workspace)
		}
	}
	active := map[string]Installed{}
	var on, off Section
	on.Title, off.Title = "Installed", "Removed"
	for _, w := range list {
		if w.Own {
			continue
		}
		name := cmp.Or(w.WorkspaceName, w.Workspace)
		org := b.orgName(w.Org) + " (" + w.Org + ")"
		if w.Active {
			active[strings.ToUpper(w.Workspace)] = w
			on.Lines = append(on.Lines, Line{U(name), T(" (" + w.Workspace + ") · " + org + " · since "), b.when(w.InstalledAt),
				T(" · approved by Slack user " + w.InstalledBy)})
			continue
		}
		why := map[string]string{"app_uninstalled": "the app was removed", "tokens_revoked": "its token was revoked"}[w.InactiveWhy]
		off.Lines = append(off.Lines, Line{U(name), T(" (" + w.Workspace + ") · " + org + " · " + cmp.Or(why, "removed") + " "), b.when(w.InactiveAt),
			T(" · /experts install-link " + w.Org + " makes a link to install it again")})
	}
	todo := Section{Title: "Not installed yet"}
	for _, o := range b.cfg.Orgs {
		if o.Slack == nil || o.Slack.Team == "" || strings.EqualFold(o.Slack.Team, desk) {
			continue
		}
		w, ok := active[strings.ToUpper(o.Slack.Team)]
		switch {
		case !ok:
			todo.Lines = append(todo.Lines, Line{B(o.Name), T(" (" + o.ID + ", workspace " + o.Slack.Team + "): /experts install-link " + o.ID)})
		case w.Org != o.ID:
			todo.Lines = append(todo.Lines, Line{B(o.Name), T(" (" + o.ID + "): its workspace " + o.Slack.Team + " is linked to " + b.orgName(w.Org) + " (" + w.Org + ")")})
		}
	}
	m := Message{Title: "Slack workspaces", Fallback: fmt.Sprintf("Slack workspaces: %d installed, %d removed, %d not installed yet", len(on.Lines), len(off.Lines), len(todo.Lines))}
	if desk != "" {
		m.Text = []Line{{T("The provider's own workspace " + desk + " uses SLACK_BOT_TOKEN and needs no install.")}}
	}
	for _, sec := range []Section{on, off, todo} {
		if len(sec.Lines) > 0 {
			m.Sections = append(m.Sections, sec)
		}
	}
	if len(m.Sections) == 0 {
		m.Text = append(m.Text, Line{T("No customer workspace has added threatdesk, and no org names a workspace of its own.")})
	}
	return m, nil
}
