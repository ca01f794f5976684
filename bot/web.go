package bot

import (
	"context"
	"fmt"
	"time"
)

// The case tracker in the browser (adapters/web). "/experts web" answers
// privately, at once, with a single-use sign-in link that the web adapter
// makes (WebSignIn, handed to the bot by cmd with SetWebSignIn). The link is
// never stored as text: the answer is the command's acknowledgement itself,
// not a row of the inbound queue, and the web adapter keeps only its hash.
//
// The web adapter asks the bot who a signed-in person is on every request
// (WebAccess): the roles come from the running config by the same rules as
// in chat (experts, managers and admins by user id; members by the org
// channel they typed the command in), so someone removed from the config
// loses the pages at once.

// vWeb is the verb of "/experts web".
const vWeb = "web"

// opWeb is asking for a sign-in link to the case tracker.
const opWeb op = "sign in to the case tracker"

// WebSignIn makes sign-in links to the case tracker; adapters/web's
// Handler implements it.
type WebSignIn interface {
	// SignInLink stores a single-use sign-in link for u and returns it.
	SignInLink(ctx context.Context, u WebUser) (WebLink, error)
}

// WebUser is a chat user as the case tracker knows them: who, the channel
// they spoke from, and the roles that gives them there.
type WebUser struct {
	User User
	// Channel is where they typed "/experts web" (for a command in a
	// thread, the channel that gave them their org); a member's org is
	// that channel's.
	Channel string
	// Roles are their roles (member, expert, manager, admin).
	Roles []Role
	// Org and OrgName are the org whose channel Channel is ("" elsewhere).
	Org, OrgName string
}

// Has reports whether u holds role r.
func (u WebUser) Has(r Role) bool {
	for _, x := range u.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// WebLink is a sign-in link: its URL, when it stops working, and a note to
// show with it ("" or that it only works on the machine threatdesk runs on).
type WebLink struct {
	URL       string
	ExpiresAt time.Time
	Note      string
}

// WebOrg is an org as the case tracker lists it.
type WebOrg struct{ ID, Name string }

// SetWebSignIn hands the bot the case tracker's link maker; without one,
// "/experts web" says the tracker is not enabled. Call it before the
// adapters start.
func (b *Bot) SetWebSignIn(s WebSignIn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.web = s
}

func (b *Bot) webSignIn() WebSignIn {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.web
}

// WebAccess is who u is, speaking from channel, by the running config:
// the same roles (and org) as a command of theirs in that channel gets.
func (b *Bot) WebAccess(u User, channel string) WebUser {
	b = b.current()
	w := b.identify(u, channel, nil)
	out := WebUser{User: u, Channel: channel, Roles: append([]Role(nil), w.roles...)}
	if w.org != nil {
		out.Org, out.OrgName = w.org.ID, w.org.Name
	}
	return out
}

// Presence is what an adapter can tell of a chat user now: whether their
// account is still active and, given a channel, whether they are still in
// it. Adapters implement it when their platform can say.
type Presence interface {
	Present(ctx context.Context, workspace, userID, channel string) (bool, error)
}

// WebPresent reports whether u is still in chat as when their session was
// opened: an active account and, given the channel that made them a member,
// still in it. It is true when u's platform cannot tell.
func (b *Bot) WebPresent(ctx context.Context, u User, channel string) (bool, error) {
	a, ok := b.adapter(u.Platform)
	if !ok {
		return true, nil
	}
	p, ok := a.(Presence)
	if !ok {
		return true, nil
	}
	return p.Present(ctx, u.Workspace, u.ID, channel)
}

// WebOrgs lists the configured orgs, in config order.
func (b *Bot) WebOrgs() []WebOrg {
	b = b.current()
	out := make([]WebOrg, len(b.cfg.Orgs))
	for i, o := range b.cfg.Orgs {
		out[i] = WebOrg{ID: o.ID, Name: o.Name}
	}
	return out
}

// webChannel is the channel of c that gives its caller their org: the
// command's own, or the thread's parent when only that one is an org's.
func (b *Bot) webChannel(c Command) string {
	if c.Thread == nil || c.Thread.Channel == "" {
		return c.Channel
	}
	if _, ok := b.cfg.orgFor(c.User.Platform, c.User.Workspace, c.Channel); ok {
		return c.Channel
	}
	return c.Thread.Channel
}

// webNameWait bounds the display-name look-up before the link is made: the
// answer must go out within the platform's 3 seconds.
const webNameWait = time.Second

// webAck answers "/experts web" privately with a sign-in link, inside the
// acknowledgement.
func (b *Bot) webAck(ctx context.Context, w who, c Command) Ack {
	s := b.webSignIn()
	if s == nil {
		return Ack{Message: ptr(textMessage("The case tracker is not enabled in this deployment.")), Private: true}
	}
	u := c.User
	if u.DisplayName == "" {
		nctx, cancel := context.WithTimeout(ctx, webNameWait)
		u = b.named(nctx, u)
		cancel()
	}
	wu := WebUser{User: u, Channel: b.webChannel(c), Roles: append([]Role(nil), w.roles...)}
	if w.org != nil {
		wu.Org, wu.OrgName = w.org.ID, w.org.Name
	}
	link, err := s.SignInLink(ctx, wu)
	if err != nil {
		b.log.Error("could not make a web sign-in link", "err", err)
		return Ack{Message: ptr(textMessage(msgUnavailable)), Private: true}
	}
	m := webLinkMessage(wu, link)
	return Ack{Message: &m, Private: true}
}

// webLinkMessage is the private answer carrying the link.
func webLinkMessage(u WebUser, link WebLink) Message {
	what := "every org's cases"
	if !u.Has(RoleExpert) && !u.Has(RoleManager) {
		what = u.OrgName + "'s cases"
	}
	until := link.ExpiresAt.UTC().Format("15:04 UTC")
	text := []Line{
		{L("Open the case tracker", link.URL), T(fmt.Sprintf(": %s, their threads, timelines and the service report.", what))},
		{T("The link opens a page that names you; press Sign in there. It signs in once, until " + until + " (10 minutes), and is yours alone: do not share it. " +
			"The session lasts 12 hours; sign out on the page to end it sooner.")},
	}
	if link.Note != "" {
		text = append(text, Line{T(link.Note)})
	}
	return Message{Title: "Your sign-in link", Text: text, Fallback: "Your sign-in link to the case tracker"}
}
