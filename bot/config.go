package bot

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config is what the bot needs to know: who the orgs are and where they
// talk, where the expert desk is, and who the experts, managers and admins
// are. cmd/threatdesk maps the YAML file onto it.
type Config struct {
	Orgs []Org
	Desk Desk
	// Experts work cases on the desk; Managers watch all of them; Admins may
	// also send test notifications.
	Experts  UserIDs
	Managers UserIDs
	Admins   UserIDs
	// Delivery tunes the outbox workers; zero values get defaults.
	Delivery Delivery
	// Inbound tunes the durable inbound queue; zero values get defaults.
	Inbound Inbound
}

// Org is a customer organisation and the chat places that speak for it.
type Org struct {
	ID   string
	Name string
	// Slack and Discord are the org's places; at least one is set.
	// Notifications go to the first channel of the first place set.
	Slack   *Place
	Discord *Place
}

// Place is a Slack workspace or Discord guild and the channels in it that act
// for an org.
type Place struct {
	// Workspace is the Slack team id (T...) or the Discord guild id.
	Workspace string
	Channels  []string
}

// Desk is where experts work cases from every org: one channel on Slack or
// on Discord.
type Desk struct {
	Slack   *DeskPlace
	Discord *DeskPlace
}

// DeskPlace is the desk's channel. Workspace is optional on Slack (one bot
// token is one workspace) and required on Discord.
type DeskPlace struct {
	Workspace string
	Channel   string
}

// UserIDs lists user ids per platform.
type UserIDs struct {
	Slack   []string
	Discord []string
}

// Has reports whether id on platform p is listed.
func (u UserIDs) Has(p Platform, id string) bool {
	switch p {
	case Slack:
		return slices.Contains(u.Slack, id)
	case Discord:
		return slices.Contains(u.Discord, id)
	}
	return false
}

// Pace is a per-channel send rate: Every between messages, with Burst sent
// back to back.
type Pace struct {
	Every time.Duration
	Burst int
}

// Delivery tunes the outbox delivery workers.
type Delivery struct {
	// Workers is how many rows are delivered at once (default 4).
	Workers int
	// Batch is how many rows one worker claims at a time (default 8).
	Batch int
	// Lease is how long a claimed row stays with its worker before another
	// may take it (default 2m). It must exceed one batch's delivery time.
	Lease time.Duration
	// Poll is the fallback wake-up when no NOTIFY arrives (default 2s).
	Poll time.Duration
	// BackoffBase and BackoffMax bound the jittered exponential backoff on
	// temporary failures (defaults 1s and 5m).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxAttempts marks a row dead after this many tries (default 25).
	MaxAttempts int
	// Pace limits sends per channel and platform; defaults: Slack one per
	// second (chat.postMessage, https://api.slack.com/methods/chat.postMessage#rate_limiting),
	// Discord one per second with bursts of 5. A zero Every means unpaced.
	Pace map[Platform]Pace
	// CallTimeout bounds one adapter call (default 15s).
	CallTimeout time.Duration
}

func (d Delivery) withDefaults() Delivery {
	d.Workers = cmp.Or(d.Workers, 4)
	d.Batch = cmp.Or(d.Batch, 8)
	d.Lease = cmp.Or(d.Lease, 2*time.Minute)
	d.Poll = cmp.Or(d.Poll, 2*time.Second)
	d.BackoffBase = cmp.Or(d.BackoffBase, time.Second)
	d.BackoffMax = cmp.Or(d.BackoffMax, 5*time.Minute)
	d.MaxAttempts = cmp.Or(d.MaxAttempts, 25)
	d.CallTimeout = cmp.Or(d.CallTimeout, 15*time.Second)
	pace := map[Platform]Pace{
		Slack:   {Every: time.Second, Burst: 1},
		Discord: {Every: time.Second, Burst: 5},
	}
	for p, v := range d.Pace {
		pace[p] = v
	}
	d.Pace = pace
	return d
}

var (
	orgIDPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	slackTeamPattern = regexp.MustCompile(`^[TE][A-Z0-9]{2,}$`)
	slackChanPattern = regexp.MustCompile(`^[CGD][A-Z0-9]{2,}$`)
	slackUserPattern = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	snowflakePattern = regexp.MustCompile(`^[0-9]{15,21}$`)
)

// Validate reports every wrong setting, each saying which and how to fix it.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Orgs) == 0 {
		bad("orgs: none configured: add at least one org with an id and a slack or discord channel")
	}
	ids := map[string]bool{}
	places := map[string]string{}
	for i, o := range c.Orgs {
		at := fmt.Sprintf("orgs[%d]", i)
		if !orgIDPattern.MatchString(o.ID) {
			bad("%s.id %q: use lower-case letters, digits, '-' or '_', e.g. \"contoso\"", at, o.ID)
		} else if ids[o.ID] {
			bad("%s.id %q is used twice: org ids must be unique", at, o.ID)
		}
		ids[o.ID] = true
		if o.Slack == nil && o.Discord == nil {
			bad("%s (%s): no slack or discord place: add slack.team and slack.channels, or discord.guild and discord.channels", at, o.ID)
		}
		check := func(p Platform, pl *Place) {
			if pl == nil {
				return
			}
			where := at + "." + string(p)
			switch p {
			case Slack:
				if !slackTeamPattern.MatchString(pl.Workspace) {
					bad("%s.team %q: a Slack team id looks like T0123ABCD (Slack: workspace settings, or the URL of the app's home)", where, pl.Workspace)
				}
			case Discord:
				if !snowflakePattern.MatchString(pl.Workspace) {
					bad("%s.guild %q: a Discord guild id is 17-20 digits, e.g. \"1000000000000000001\" (developer mode, right-click the server, Copy Server ID)", where, pl.Workspace)
				}
			}
			if len(pl.Channels) == 0 {
				bad("%s.channels: empty: list at least one channel; notifications go to the first", where)
			}
			for j, ch := range pl.Channels {
				if !validChannel(p, ch) {
					bad("%s.channels[%d] %q: %s", where, j, ch, channelHint(p))
					continue
				}
				key := string(p) + "/" + ch
				if other, ok := places[key]; ok {
					bad("%s.channels[%d] %q already belongs to org %q: a channel speaks for one org only", where, j, ch, other)
				}
				places[key] = o.ID
			}
		}
		check(Slack, o.Slack)
		check(Discord, o.Discord)
	}
	switch {
	case c.Desk.Slack == nil && c.Desk.Discord == nil:
		bad("desk: not set: add desk.slack.channel or desk.discord.guild and desk.discord.channel")
	case c.Desk.Slack != nil && c.Desk.Discord != nil:
		bad("desk: both slack and discord are set: the desk is one channel; keep one")
	case c.Desk.Slack != nil:
		if !validChannel(Slack, c.Desk.Slack.Channel) {
			bad("desk.slack.channel %q: %s", c.Desk.Slack.Channel, channelHint(Slack))
		}
		if _, ok := places["slack/"+c.Desk.Slack.Channel]; ok {
			bad("desk.slack.channel %q is also an org channel: give the desk its own channel", c.Desk.Slack.Channel)
		}
	case c.Desk.Discord != nil:
		if !snowflakePattern.MatchString(c.Desk.Discord.Workspace) {
			bad("desk.discord.guild %q: a Discord guild id is 17-20 digits", c.Desk.Discord.Workspace)
		}
		if !validChannel(Discord, c.Desk.Discord.Channel) {
			bad("desk.discord.channel %q: %s", c.Desk.Discord.Channel, channelHint(Discord))
		}
		if _, ok := places["discord/"+c.Desk.Discord.Channel]; ok {
			bad("desk.discord.channel %q is also an org channel: give the desk its own channel", c.Desk.Discord.Channel)
		}
	}
	for _, l := range []struct {
		name string
		ids  UserIDs
	}{{"experts", c.Experts}, {"managers", c.Managers}, {"admins", c.Admins}} {
		for i, id := range l.ids.Slack {
			if !slackUserPattern.MatchString(id) {
				bad("%s.slack[%d] %q: a Slack user id looks like U0123ABCD (profile, More, Copy member ID)", l.name, i, id)
			}
		}
		for i, id := range l.ids.Discord {
			if !snowflakePattern.MatchString(id) {
				bad("%s.discord[%d] %q: a Discord user id is 17-20 digits (developer mode, right-click the user, Copy User ID)", l.name, i, id)
			}
		}
	}
	if len(c.Experts.Slack)+len(c.Experts.Discord) == 0 {
		bad("experts: none configured: list at least one expert user id under experts.slack or experts.discord, or nobody can take a case")
	}
	d := c.Delivery
	if d.Workers < 0 || d.Batch < 0 || d.MaxAttempts < 0 || d.Lease < 0 || d.Poll < 0 {
		bad("delivery: workers, batch, max attempts, lease and poll must not be negative")
	}
	if d.Lease != 0 && d.Lease < 5*time.Second {
		bad("delivery.lease %s: too short to deliver a batch; use at least 5s (default 2m)", d.Lease)
	}
	if err := c.Inbound.validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("bot config: %w", errors.Join(errs...))
	}
	return nil
}

func validChannel(p Platform, ch string) bool {
	switch p {
	case Slack:
		return slackChanPattern.MatchString(ch)
	case Discord:
		return snowflakePattern.MatchString(ch)
	}
	return false
}

func channelHint(p Platform) string {
	if p == Slack {
		return "a Slack channel id looks like C0123ABCD (channel details, at the bottom), not #name"
	}
	return "a Discord channel id is 17-20 digits (developer mode, right-click the channel, Copy Channel ID)"
}

// orgPlace finds the org a channel speaks for.
func (c Config) orgFor(p Platform, workspace, channel string) (*Org, bool) {
	for i := range c.Orgs {
		o := &c.Orgs[i]
		pl := o.place(p)
		if pl == nil || !slices.Contains(pl.Channels, channel) {
			continue
		}
		if workspace != "" && pl.Workspace != "" && !strings.EqualFold(workspace, pl.Workspace) {
			continue
		}
		return o, true
	}
	return nil, false
}

func (c Config) org(id string) (*Org, bool) {
	for i := range c.Orgs {
		if c.Orgs[i].ID == id {
			return &c.Orgs[i], true
		}
	}
	return nil, false
}

func (o *Org) place(p Platform) *Place {
	switch p {
	case Slack:
		return o.Slack
	case Discord:
		return o.Discord
	}
	return nil
}

// NotifyDest is where an org's notifications go: the first channel of its
// first place (Slack before Discord).
func (o *Org) NotifyDest() Dest {
	if o.Slack != nil && len(o.Slack.Channels) > 0 {
		return Dest{Platform: Slack, Workspace: o.Slack.Workspace, Channel: o.Slack.Channels[0]}
	}
	if o.Discord != nil && len(o.Discord.Channels) > 0 {
		return Dest{Platform: Discord, Workspace: o.Discord.Workspace, Channel: o.Discord.Channels[0]}
	}
	return Dest{}
}

// DeskDest is the desk channel.
func (d Desk) DeskDest() Dest {
	if d.Slack != nil {
		return Dest{Platform: Slack, Workspace: d.Slack.Workspace, Channel: d.Slack.Channel}
	}
	if d.Discord != nil {
		return Dest{Platform: Discord, Workspace: d.Discord.Workspace, Channel: d.Discord.Channel}
	}
	return Dest{}
}
