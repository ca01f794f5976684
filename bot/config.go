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
// are. Its yaml keys are those of the config file (README.md, "The config
// file"): the desk, experts, managers and admins blocks decode into it
// directly; each orgs[] entry is shared with other packages, and
// internal/config hands the bot its part (Org).
//
// New fills defaults (WithDefaults) and checks the config (Validate); to
// start, the bot also needs at least one org and one expert.
type Config struct {
	// Orgs are the customer organisations: orgs[] of the config file (the
	// id, name, slack and discord keys). A channel acts for one org only.
	Orgs []Org `yaml:"-"`
	// Desk is where experts work cases from every org: one channel, on
	// Slack or on Discord. Required when there are orgs.
	Desk Desk `yaml:"desk"`
	// Experts take, assign and answer cases and see every org; Managers see
	// the status of every org's cases; Admins may also send test
	// notifications (sample-notification). Default: nobody.
	Experts  UserIDs `yaml:"experts"`
	Managers UserIDs `yaml:"managers"`
	Admins   UserIDs `yaml:"admins"`
	// Reports is the reports block (the weekly digest) and the timezone
	// reports use (digest.go).
	Reports Reports `yaml:"reports"`
	// Delivery tunes the outbox workers; zero values get defaults. Only
	// its lease is in the config file (delivery.lease).
	Delivery Delivery `yaml:"delivery"`
	// Inbound tunes the durable inbound queue; zero values get defaults.
	// Not in the config file.
	Inbound Inbound `yaml:"-"`
	// Location is the time zone absolute times are shown in, with its name
	// (the config file's top-level timezone, which internal/config hands
	// over); nil means UTC.
	Location *time.Location `yaml:"-"`
	// Now is the clock events are rendered by (who is on call, how long
	// until a due time); default time.Now. Tests pass the clock they give
	// casework.
	Now func() time.Time `yaml:"-"`
}

// Org is a customer organisation and the chat places that speak for it:
// the bot's keys of an orgs[] entry of the config file.
type Org struct {
	// ID is the org's short id (orgs[].id): lower-case letters, digits and
	// dashes, at most 63 characters, unique. Required.
	ID string `yaml:"id"`
	// Name is the display name (orgs[].name); default the id.
	Name string `yaml:"name"`
	// Slack and Discord are the org's places; at least one is set.
	// Notifications go to the first channel of the first place set (Slack
	// before Discord).
	Slack   *SlackPlace   `yaml:"slack"`
	Discord *DiscordPlace `yaml:"discord"`
}

// SlackPlace is an org's Slack workspace and the channels in it that act
// for the org (orgs[].slack).
type SlackPlace struct {
	// Team is the Slack team id (T0123ABCD; from the workspace URL or
	// auth.test). Required.
	Team string `yaml:"team"`
	// Channels are channel ids (C…, G…; channel details, at the bottom), at
	// least one: commands there act for the org, notifications go to the first.
	Channels []string `yaml:"channels"`
}

// DiscordPlace is an org's Discord guild and the channels in it that act
// for the org (orgs[].discord).
type DiscordPlace struct {
	// Guild is the guild id, a quoted number (Developer Mode, Copy Server
	// ID). Required.
	Guild string `yaml:"guild"`
	// Channels are channel ids (quoted numbers), at least one; as for Slack.
	Channels []string `yaml:"channels"`
}

// Desk is where experts work cases from every org: one channel, on Slack
// or on Discord (the desk block).
type Desk struct {
	Slack   *SlackDesk   `yaml:"slack"`
	Discord *DiscordDesk `yaml:"discord"`
}

// SlackDesk is the desk's Slack channel (desk.slack).
type SlackDesk struct {
	// Team is the Slack team id; optional (one bot token is one workspace).
	Team string `yaml:"team"`
	// Channel is the desk's channel id (C…), not an org's channel. Required.
	Channel string `yaml:"channel"`
}

// DiscordDesk is the desk's Discord channel (desk.discord).
type DiscordDesk struct {
	// Guild is the guild id (quoted). Required.
	Guild string `yaml:"guild"`
	// Channel is the desk's channel id (quoted), not an org's channel.
	// Required.
	Channel string `yaml:"channel"`
}

// UserIDs lists user ids per platform (experts, managers, admins): Slack
// member ids (U0123ABCD; profile, Copy member ID) and Discord user ids
// (quoted numbers; Copy User ID).
type UserIDs struct {
	Slack   []string `yaml:"slack"`
	Discord []string `yaml:"discord"`
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
	Workers int `yaml:"-"`
	// Batch is how many rows one worker claims at a time (default 8).
	Batch int `yaml:"-"`
	// Lease is how long a claimed row stays with its worker before another
	// may take it: how long the messages of a replica that died wait for
	// another (delivery.lease; default 2m, at least 5s). It must exceed one
	// batch's delivery time.
	Lease time.Duration `yaml:"lease"`
	// Poll is the fallback wake-up when no NOTIFY arrives (default 2s).
	Poll time.Duration `yaml:"-"`
	// BackoffBase and BackoffMax bound the jittered exponential backoff on
	// temporary failures (defaults 1s and 5m).
	BackoffBase time.Duration `yaml:"-"`
	BackoffMax  time.Duration `yaml:"-"`
	// MaxAttempts marks a row dead after this many tries (default 25).
	MaxAttempts int `yaml:"-"`
	// Pace limits sends per channel and platform; defaults: Slack one per
	// second (chat.postMessage, https://api.slack.com/methods/chat.postMessage#rate_limiting),
	// Discord one per second with bursts of 5. A zero Every means unpaced.
	Pace map[Platform]Pace `yaml:"-"`
	// CallTimeout bounds one adapter call (default 15s).
	CallTimeout time.Duration `yaml:"-"`
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

// WithDefaults returns c with every unset field at its default: an org's
// name is its id; Delivery and Inbound get theirs.
func (c Config) WithDefaults() Config {
	orgs := make([]Org, len(c.Orgs))
	for i, o := range c.Orgs {
		o.Name = cmp.Or(o.Name, o.ID)
		orgs[i] = o
	}
	c.Orgs = orgs
	c.Delivery = c.Delivery.withDefaults()
	c.Inbound = c.Inbound.withDefaults()
	c.Reports = c.Reports.withDefaults()
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

var (
	orgIDPattern     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	slackTeamPattern = regexp.MustCompile(`^T[A-Z0-9]{2,}$`)
	slackChanPattern = regexp.MustCompile(`^[CGD][A-Z0-9]{2,}$`)
	slackUserPattern = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	discordIDPattern = regexp.MustCompile(`^[0-9]{15,21}$`)
)

// IsDiscordID reports whether s has the shape of a Discord id (a snowflake):
// 15 to 21 digits. It is the one rule for every Discord id in the
// configuration (guilds, channels, users, DISCORD_APP_ID).
func IsDiscordID(s string) bool { return discordIDPattern.MatchString(s) }

// Validate reports every wrong setting, each naming the key of the config
// file and how to fix it, joined into one error; nil when c is usable.
// internal/config reports these with the file's other problems.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	ids := map[string]bool{}
	// A Slack channel id is one channel wherever it is seen: a channel
	// shared by Slack Connect has the same id in every workspace that
	// shares it, and whoever is in it reads what is posted there. So one
	// id names one org's channel, whatever team each org names.
	channels := map[string]string{} // "platform:channel" -> org id
	for i, o := range c.Orgs {
		at := fmt.Sprintf("orgs[%d]", i)
		if !orgIDPattern.MatchString(o.ID) {
			bad("%s.id %q must be lower-case letters, digits and dashes, e.g. contoso", at, o.ID)
		} else {
			at = fmt.Sprintf("orgs[%d] (%s)", i, o.ID)
		}
		if ids[o.ID] {
			bad("%s.id is used by two orgs: org ids must be unique", at)
		}
		ids[o.ID] = true
		if o.Slack == nil && o.Discord == nil {
			bad("%s has no chat: add slack: {team, channels} or discord: {guild, channels} so its people can reach experts and see notifications", at)
		}
		if s := o.Slack; s != nil {
			if !slackTeamPattern.MatchString(s.Team) {
				bad("%s.slack.team %q must be a Slack team id such as T0123ABCD (from the workspace URL or auth.test; a workspace's, not an Enterprise Grid organisation's E… id)", at, s.Team)
			}
			if len(s.Channels) == 0 {
				bad("%s.slack.channels is empty: list at least one channel id; notifications go to the first", at)
			}
			for _, ch := range s.Channels {
				if !slackChanPattern.MatchString(ch) {
					bad("%s.slack.channels: %q must be a Slack channel id such as C0123ABCD (channel details, at the bottom), not a #name", at, ch)
				} else if prev := channels["slack:"+ch]; prev != "" {
					bad("%s.slack.channels: %s already belongs to org %s: a channel acts for one org (a channel shared by Slack Connect has one id in every workspace, and both orgs would read each other's notifications)", at, ch, prev)
				}
				channels["slack:"+ch] = cmp.Or(channels["slack:"+ch], o.ID)
			}
		}
		if d := o.Discord; d != nil {
			if !IsDiscordID(d.Guild) {
				bad("%s.discord.guild %q must be a Discord guild id (a quoted number, 15 to 21 digits; Developer Mode, Copy Server ID)", at, d.Guild)
			}
			if len(d.Channels) == 0 {
				bad("%s.discord.channels is empty: list at least one channel id; notifications go to the first", at)
			}
			for _, ch := range d.Channels {
				if !IsDiscordID(ch) {
					bad("%s.discord.channels: %q must be a Discord channel id (a quoted number, 15 to 21 digits; Copy Channel ID)", at, ch)
				} else if prev := channels["discord:"+ch]; prev != "" {
					bad("%s.discord.channels: %s already belongs to org %s: a channel acts for one org", at, ch, prev)
				}
				channels["discord:"+ch] = o.ID
			}
		}
	}
	if len(c.Orgs) > 0 && c.Desk.Slack == nil && c.Desk.Discord == nil {
		bad("desk is missing: set desk.slack.channel (or desk.discord.guild and desk.discord.channel) to the channel where experts work cases")
	}
	if c.Desk.Slack != nil && c.Desk.Discord != nil {
		bad("desk: set either desk.slack or desk.discord, not both")
	}
	if d := c.Desk.Slack; d != nil {
		if !slackChanPattern.MatchString(d.Channel) {
			bad("desk.slack.channel %q must be a Slack channel id such as C0123ABCD", d.Channel)
		}
		if d.Team != "" && !slackTeamPattern.MatchString(d.Team) {
			bad("desk.slack.team %q must be a Slack team id such as T0123ABCD (a workspace's, not an Enterprise Grid organisation's E… id)", d.Team)
		}
		if org := channels["slack:"+d.Channel]; org != "" {
			bad("desk.slack.channel %s is also org %s's channel: give the experts a channel of their own", d.Channel, org)
		}
		if teams := slackTeams(c.Orgs); d.Team == "" && len(teams) > 1 {
			bad("desk.slack.team is required when orgs are in several Slack workspaces (%s): set it to the team id of the desk's own workspace, so that no other workspace's channel can pass for the desk", strings.Join(teams, ", "))
		}
	}
	if d := c.Desk.Discord; d != nil {
		if !IsDiscordID(d.Guild) || !IsDiscordID(d.Channel) {
			bad("desk.discord needs guild and channel as Discord ids (quoted numbers, 15 to 21 digits)")
		}
		if org := channels["discord:"+d.Channel]; org != "" {
			bad("desk.discord.channel %s is also org %s's channel: give the experts a channel of their own", d.Channel, org)
		}
	}
	for _, u := range []struct {
		name  string
		users UserIDs
	}{{"experts", c.Experts}, {"managers", c.Managers}, {"admins", c.Admins}} {
		for _, id := range u.users.Slack {
			if !slackUserPattern.MatchString(id) {
				bad("%s.slack: %q must be a Slack user id such as U0123ABCD (profile, Copy member ID), not a name", u.name, id)
			}
		}
		for _, id := range u.users.Discord {
			if !IsDiscordID(id) {
				bad("%s.discord: %q must be a Discord user id (a quoted number, 15 to 21 digits; Copy User ID)", u.name, id)
			}
		}
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
	if err := c.Reports.validate(c.Orgs); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ready reports what the bot lacks to be of use: an org to serve and an
// expert to answer (the config file may leave them out while no chat
// platform is enabled).
func (c Config) ready() error {
	var errs []error
	if len(c.Orgs) == 0 {
		errs = append(errs, errors.New("orgs: none configured: add at least one org with an id and a slack or discord channel"))
	}
	if len(c.Experts.Slack)+len(c.Experts.Discord) == 0 {
		errs = append(errs, errors.New("experts: none configured: list at least one expert user id under experts.slack or experts.discord, or nobody can take a case"))
	}
	return errors.Join(errs...)
}

// DiscordGuilds lists every Discord guild the config names (the orgs' and
// the desk's), each once: where /experts is registered.
func (c Config) DiscordGuilds() []string {
	var out []string
	add := func(g string) {
		if g != "" && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	for _, o := range c.Orgs {
		if o.Discord != nil {
			add(o.Discord.Guild)
		}
	}
	if c.Desk.Discord != nil {
		add(c.Desk.Discord.Guild)
	}
	return out
}

// orgFor finds the org a channel speaks for.
func (c Config) orgFor(p Platform, workspace, channel string) (*Org, bool) {
	for i := range c.Orgs {
		o := &c.Orgs[i]
		pl := o.place(p)
		if pl == nil || !slices.Contains(pl.Channels, channel) {
			continue
		}
		// The channel counts only in the org's own workspace (guild): an
		// event from another workspace never acts for the org, whatever the
		// channel id.
		if pl.Workspace != "" && !strings.EqualFold(workspace, pl.Workspace) {
			continue
		}
		return o, true
	}
	return nil, false
}

// channelOwner finds the org that lists channel on platform p, whatever
// its workspace: a channel shared by Slack Connect (or across an
// Enterprise Grid) has one id in every workspace that shares it, and the
// config gives an id to one org only.
func (c Config) channelOwner(p Platform, channel string) (*Org, bool) {
	for i := range c.Orgs {
		if pl := c.Orgs[i].place(p); pl != nil && slices.Contains(pl.Channels, channel) {
			return &c.Orgs[i], true
		}
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

// place is an org's place on one platform: a Slack team or Discord guild
// (Workspace) and its channels.
type place struct {
	Workspace string
	Channels  []string
}

func (o *Org) place(p Platform) *place {
	switch {
	case p == Slack && o.Slack != nil:
		return &place{Workspace: o.Slack.Team, Channels: o.Slack.Channels}
	case p == Discord && o.Discord != nil:
		return &place{Workspace: o.Discord.Guild, Channels: o.Discord.Channels}
	}
	return nil
}

// NotifyDest is where an org's notifications go: the first channel of its
// first place (Slack before Discord).
func (o *Org) NotifyDest() Dest {
	if o.Slack != nil && len(o.Slack.Channels) > 0 {
		return Dest{Platform: Slack, Workspace: o.Slack.Team, Channel: o.Slack.Channels[0]}
	}
	if o.Discord != nil && len(o.Discord.Channels) > 0 {
		return Dest{Platform: Discord, Workspace: o.Discord.Guild, Channel: o.Discord.Channels[0]}
	}
	return Dest{}
}

// DeskDest is the desk channel.
func (d Desk) DeskDest() Dest {
	if d.Slack != nil {
		return Dest{Platform: Slack, Workspace: d.Slack.Team, Channel: d.Slack.Channel}
	}
	if d.Discord != nil {
		return Dest{Platform: Discord, Workspace: d.Discord.Guild, Channel: d.Discord.Channel}
	}
	return Dest{}
}

// slackTeams lists the distinct Slack teams of orgs, in config order.
func slackTeams(orgs []Org) []string {
	var out []string
	for _, o := range orgs {
		if o.Slack != nil && o.Slack.Team != "" && !slices.Contains(out, o.Slack.Team) {
			out = append(out, o.Slack.Team)
		}
	}
	return out
}
