package discord

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/bwmarrin/discordgo"
)

// CommandName is the one slash command.
const CommandName = "experts"

// Option length limits for /experts (Discord allows 6000 per string option).
const (
	maxQuestion = 1500
	maxID       = 100
	maxCaseRef  = 32
	maxSearch   = 200 // casework.MaxSearchRunes
)

// Option length limits of the insight subcommands.
const (
	maxURL  = 2048 // the bot's limit of a URL subject
	maxName = 80   // a campaign or actor name
)

func strOpt(name, desc string, required bool, minLen, maxLen int) *discordgo.ApplicationCommandOption {
	o := &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionString, Name: name, Description: desc, Required: required, MaxLength: maxLen}
	if minLen > 0 {
		o.MinLength = &minLen
	}
	return o
}

func question(required bool) *discordgo.ApplicationCommandOption {
	return strOpt("question", "What you want the experts to look at", required, 3, maxQuestion)
}

func caseOpt() *discordgo.ApplicationCommandOption {
	o := strOpt("case", "Case reference, e.g. EOD-1042", true, 1, maxCaseRef)
	o.Autocomplete = true // suggestions from the bot (bot.Completer)
	return o
}

func sub(name, desc string, opts ...*discordgo.ApplicationCommandOption) *discordgo.ApplicationCommandOption {
	return &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionSubCommand, Name: name, Description: desc, Options: opts}
}

// MaxSubcommands is how many subcommands and groups a command may have, and
// how many subcommands a group may hold
// (https://discord.com/developers/docs/interactions/application-commands#subcommands-and-subcommand-groups).
const MaxSubcommands = 25

// group is a subcommand group: /experts case take EOD-12. A group's
// subcommands are verbs of the bot's grammar of their own (the group only
// files them), unless the group is in verbGroups.
func group(name, desc string, subs ...*discordgo.ApplicationCommandOption) *discordgo.ApplicationCommandOption {
	return &discordgo.ApplicationCommandOption{Type: discordgo.ApplicationCommandOptionSubCommandGroup, Name: name, Description: desc, Options: subs}
}

// verbGroups are the groups whose name is the bot's verb and whose
// subcommand is its first word (Slack: /experts campaign tag EOD-3 x).
var verbGroups = map[string]bool{"campaign": true}

// Commands returns the /experts definition registered by bulk overwrite:
// real subcommands with typed, length-limited options, named as the bot's
// grammar reads them. The order of each subcommand's options is the order
// of bot.Command.Args.
func Commands() []*discordgo.ApplicationCommand {
	text := func(desc string, required bool) *discordgo.ApplicationCommandOption {
		return strOpt("text", desc, required, 1, maxQuestion)
	}
	optCase := func() *discordgo.ApplicationCommandOption {
		o := caseOpt()
		o.Required = false
		return o
	}
	org := strOpt("org", "Experts and managers: an org id", false, 1, 64)
	return []*discordgo.ApplicationCommand{{
		Name:        CommandName,
		Description: "Ask threat experts, follow cases and credits",
		Type:        discordgo.ChatApplicationCommand,
		// In servers that installed the app only: a member's own (user)
		// install would carry /experts past the server's say.
		Contexts:         &[]discordgo.InteractionContextType{discordgo.InteractionContextGuild},
		IntegrationTypes: &[]discordgo.ApplicationIntegrationType{discordgo.ApplicationIntegrationGuildInstall},
		Options: []*discordgo.ApplicationCommandOption{
			sub("ask", "Ask the threat experts a question (no question: a form opens)", question(false)),
			sub("alert", "Ask about a Defender or Graph alert", strOpt("id", "Alert id", true, 1, maxID), question(false)),
			sub("device", "Ask whether a device is compromised", strOpt("device", "Device id or host name", true, 1, 253), question(false)),
			sub("file", "Ask about a file", strOpt("file", "SHA-1 or SHA-256 of the file", true, 40, 64), question(false)),
			sub("incident", "Ask about an incident", strOpt("id", "Incident id", true, 1, maxID), question(false)),
			sub("status", "Show a case's status", caseOpt()),
			sub("cases", "List cases", &discordgo.ApplicationCommandOption{
				Type: discordgo.ApplicationCommandOptionString, Name: "filter", Description: "Which cases (default: open)",
				Choices: []*discordgo.ApplicationCommandOptionChoice{
					{Name: "open", Value: "open"}, {Name: "mine", Value: "mine"},
					{Name: "breaching", Value: "breaching"}, {Name: "all", Value: "all"},
				},
			}, org, strOpt("search", "Find cases instead: words, a hash, a host, @user or EOD-n", false, 1, maxSearch)),
			sub("credits", "Show this quarter's expert credits", strOpt("org", "Experts and managers: an org id", false, 1, 64)),
			sub("help", "How to use /experts"),
			// Experts' work on a case: /experts case take EOD-12 (on Slack,
			// /experts take EOD-12).
			group("case", "Experts: take, assign, answer and conclude cases",
				sub("take", "Experts: take a case (none given: the most urgent new case)", optCase()),
				sub("assign", "Experts: assign a case", caseOpt(), &discordgo.ApplicationCommandOption{
					Type: discordgo.ApplicationCommandOptionUser, Name: "expert", Description: "Who takes it", Required: true,
				}),
				sub("more-info", "Experts: ask the requester for more information", caseOpt(), text("What you need", false)),
				sub("sample", "Experts: ask the requester for a file sample", caseOpt(), text("Which file", false)),
				sub("more-time", "Experts: say the case needs more time", caseOpt(), text("Why", false)),
				sub("conclude", "Experts: conclude a case (no summary: a form opens)", caseOpt(), strOpt("summary", "The conclusion", false, 1, maxQuestion)),
				sub("resolve", "Experts: conclude a case (same as conclude)", caseOpt(), strOpt("summary", "The conclusion", false, 1, maxQuestion)),
				sub("note", "Add a note to a case", caseOpt(), text("The note", true)),
			),
			group("admin", "Admins: test notifications and upkeep",
				sub("sample-notification", "Admins: post a sample attack notification"),
				sub("reload", "Admins: read the config file again and switch to it (a bad file changes nothing)"),
				sub("install-link", "Admins: Slack only: a link that adds threatdesk to an org's Slack workspace", strOpt("org", "The org id", true, 1, 64)),
				sub("workspaces", "Admins: the Slack workspaces that added threatdesk, and the orgs still to install"),
			),
			sub("report", "Service report: cases, response times, SLA, credits, notifications", &discordgo.ApplicationCommandOption{
				Type: discordgo.ApplicationCommandOptionString, Name: "period", Description: "Calendar period, so far (default: quarter)",
				Choices: []*discordgo.ApplicationCommandOptionChoice{{Name: "week", Value: "week"}, {Name: "month", Value: "month"}, {Name: "quarter", Value: "quarter"}},
			}, org),
			sub("export", "A case's full record (Markdown and JSON), sent to you only", caseOpt()),
			sub("verify", "Check a case's hash-chained timeline", caseOpt()),
			sub("incidents", "List incidents with score and why, posted or quiet", &discordgo.ApplicationCommandOption{
				Type: discordgo.ApplicationCommandOptionString, Name: "filter", Description: "Which incidents (default: open)",
				Choices: []*discordgo.ApplicationCommandOptionChoice{
					{Name: "open", Value: "open"}, {Name: "quiet (not notified)", Value: "quiet"}, {Name: "all", Value: "all"},
				},
			}, strOpt("org", "Experts and managers: an org id", false, 1, 64)),
			sub("upload", "Get a one-time link to send the experts a file sample", caseOpt()),
			sub("oncall", "Experts and managers: who is on call, until when, who is next; or take the pager", &discordgo.ApplicationCommandOption{
				Type: discordgo.ApplicationCommandOptionString, Name: "action", Description: "show (default), or take the pager until the next hand-over",
				Choices: []*discordgo.ApplicationCommandOptionChoice{{Name: "show", Value: "show"}, {Name: "take", Value: "take"}},
			}),
			sub("web", "Open the case tracker in your browser (a private sign-in link)"),
			// Expert insight (issue 19): the network connection, the actor,
			// and the experts' campaigns (/experts campaign tag EOD-3 x).
			sub("ip", "Ask about a suspicious network connection to an IP address", strOpt("ip", "IPv4 or IPv6 address", true, 2, 64), question(false)),
			sub("url", "Ask about a suspicious URL or domain", strOpt("url", "URL (https://...) or domain", true, 3, maxURL), question(false)),
			sub("actor", "Ask about a threat actor or campaign", strOpt("actor", "Actor or campaign name, e.g. Storm-0501", true, 2, maxName), question(false)),
			group("campaign", "Experts: campaigns and actors across orgs",
				sub("show", "Experts: every case and incident tagged with a campaign", strOpt("name", "Campaign or actor name", true, 2, maxName)),
				sub("tag", "Experts: tag a case or an incident with a campaign", strOpt("target", "Case (EOD-12) or incident id", true, 1, maxCaseRef),
					strOpt("name", "Campaign or actor name", true, 2, maxName)),
				sub("share", "Experts: name the campaign on its customers' notifications", strOpt("name", "Campaign or actor name", true, 2, maxName)),
			),
		},
	}}
}

// optionOrder is each subcommand's option names in declaration order, by
// the bot's verb; a subcommand of a group in verbGroups is keyed
// "group sub".
func optionOrder() map[string][]string {
	out := map[string][]string{}
	var walk func(prefix string, opts []*discordgo.ApplicationCommandOption)
	walk = func(prefix string, opts []*discordgo.ApplicationCommandOption) {
		for _, o := range opts {
			switch o.Type {
			case discordgo.ApplicationCommandOptionSubCommandGroup:
				p := ""
				if verbGroups[o.Name] {
					p = o.Name + " "
				}
				walk(p, o.Options)
			case discordgo.ApplicationCommandOptionSubCommand:
				key := prefix + o.Name
				out[key] = []string{}
				for _, oo := range o.Options {
					out[key] = append(out[key], oo.Name)
				}
			}
		}
	}
	walk("", Commands()[0].Options)
	return out
}

// invoked unwraps a command's options: the verb the bot reads, the words
// that come before the options (a verb group's subcommand), the key of
// optionOrder, and the options themselves.
func invoked(opts []*discordgo.ApplicationCommandInteractionDataOption) (verb string, first []string, key string, rest []*discordgo.ApplicationCommandInteractionDataOption) {
	if len(opts) == 1 && opts[0].Type == discordgo.ApplicationCommandOptionSubCommandGroup {
		g := opts[0]
		if len(g.Options) != 1 {
			return "", nil, "", nil
		}
		s := g.Options[0]
		if verbGroups[g.Name] {
			return g.Name, []string{s.Name}, g.Name + " " + s.Name, s.Options
		}
		return s.Name, nil, s.Name, s.Options
	}
	if len(opts) == 1 && opts[0].Type == discordgo.ApplicationCommandOptionSubCommand {
		return opts[0].Name, nil, opts[0].Name, opts[0].Options
	}
	return "", nil, "", opts
}

// optionString renders an option value as text.
func optionString(o *discordgo.ApplicationCommandInteractionDataOption) string {
	switch v := o.Value.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// register bulk-overwrites /experts in each of guilds, or globally when
// guilds is nil. It returns the guilds left to try again (a temporary
// failure) and the last error; a guild that refuses for good (the bot was
// removed from it: 403) is logged and given up on its own, and the others
// are still registered.
func (a *Adapter) register(ctx context.Context, guilds []string) ([]string, error) {
	cmds := Commands()
	if len(a.cfg.Guilds) == 0 {
		ep := discordgo.EndpointApplicationGlobalCommands(a.cfg.AppID)
		if _, err := a.do(ctx, "register commands", http.MethodPut, ep, ep, cmds); err != nil {
			if isPermanent(err) {
				a.log.Error("could not register /experts globally", "err", err)
				return nil, nil
			}
			return nil, fmt.Errorf("register /experts globally: %w", err)
		}
		return nil, nil
	}
	var again []string
	var last error
	for _, g := range guilds {
		ep := discordgo.EndpointApplicationGuildCommands(a.cfg.AppID, g)
		_, err := a.do(ctx, "register commands", http.MethodPut, ep, ep, cmds)
		switch {
		case err == nil:
			a.log.Info("registered /experts", "guild", g)
		case isPermanent(err):
			a.log.Error("could not register /experts in a guild; the others go on", "guild", g, "err", err)
		default:
			again, last = append(again, g), fmt.Errorf("register /experts in guild %s: %w", g, err)
		}
	}
	return again, last
}

// registerLoop registers until every guild is done or refused for good,
// backing off on temporary failures.
func (a *Adapter) registerLoop(ctx context.Context) {
	wait := time.Second
	guilds := a.cfg.Guilds
	for {
		left, err := a.register(ctx, guilds)
		if err == nil {
			if len(a.cfg.Guilds) == 0 {
				a.log.Info("registered /experts", "global", true)
			}
			return
		}
		guilds = left
		if d := retryWait(err); d > wait {
			wait = d
		}
		a.log.Warn("registering /experts failed; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}
