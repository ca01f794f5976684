package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	discordadapter "github.com/threatdesk/threatdesk/adapters/discord"
	slackadapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/httpapi"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// component is a long-running part with a start and an idempotent stop.
type component struct {
	name  string
	start func(ctx context.Context) error
	stop  func(ctx context.Context)
}

// application is the wired service: its components start in order and stop
// in reverse.
type application struct {
	log        *slog.Logger
	components []component
	started    int
}

func (a *application) add(name string, start func(context.Context) error, stop func(context.Context)) {
	a.components = append(a.components, component{name: name, start: start, stop: stop})
}

// wire builds every service from the configuration and mounts its routes.
// It is the only place where concrete types meet.
func wire(cfg *config.Config, pool *pgxpool.Pool, srv *httpapi.Server, log *slog.Logger, reg prometheus.Registerer) (*application, error) {
	app := &application{log: log}
	f := cfg.File

	key, err := secretKey(cfg, log)
	if err != nil {
		return nil, err
	}
	cases, err := casework.New(pool, caseworkConfig(f, key), log.With("service", "casework"), reg)
	if err != nil {
		return nil, fmt.Errorf("casework: %w", err)
	}
	hunt, err := hunting.New(pool, huntingConfig(cfg), log.With("service", "hunting"), reg)
	if err != nil {
		return nil, fmt.Errorf("hunting: %w", err)
	}
	srv.HandleLimited("POST /api/v1/alerts", f.Hunting.MaxBodyBytes+1, hunt.Handler())

	app.add("casework", cases.Start, func(context.Context) { logStop(log, "casework", cases.Stop()) })
	app.add("hunting", hunt.Start, func(context.Context) { logStop(log, "hunting", hunt.Stop()) })
	if !cfg.SlackEnabled() && !cfg.DiscordEnabled() {
		// Without a platform there is nobody to talk to: no bot, and outbox
		// events wait until a platform is configured.
		log.Info("no chat platform is enabled: set SLACK_BOT_TOKEN with SLACK_APP_TOKEN or SLACK_SIGNING_SECRET for Slack, or DISCORD_BOT_TOKEN and DISCORD_APP_ID for Discord")
		return app, nil
	}

	core, err := bot.New(botConfig(f), pool, bot.NewCaseworkCases(cases), bot.NewHuntingIncidents(hunt), log.With("service", "bot"), reg)
	if err != nil {
		return nil, fmt.Errorf("chat is enabled, so THREATDESK_CONFIG must describe who talks where: %w", err)
	}
	app.add("bot", core.Start, func(context.Context) { core.Stop() })

	if cfg.SlackEnabled() {
		slack, err := slackadapter.New(slackadapter.Config{
			BotToken:      cfg.SlackBotToken.Value(),
			AppToken:      cfg.SlackAppToken.Value(),
			SigningSecret: cfg.SlackSigningSecret.Value(),
			APIURL:        cfg.SlackAPIURL,
			Replays:       core, // replayed signatures, in the bot's inbound table
		}, log.With("adapter", "slack"), reg, core)
		if err != nil {
			return nil, fmt.Errorf("slack: %w", err)
		}
		if err := core.Register(slack); err != nil {
			return nil, fmt.Errorf("register slack: %w", err)
		}
		if cfg.SlackSigningSecret != "" {
			h := slack.Handler()
			for _, route := range []string{"/slack/commands", "/slack/interactions", "/slack/events"} {
				srv.Handle("POST "+route, h)
			}
		}
		app.add("slack", slack.Start, func(context.Context) { slack.Stop() })
	}
	if cfg.DiscordEnabled() {
		discord, err := discordadapter.New(discordadapter.Config{
			Token:     cfg.DiscordBotToken.Value(),
			AppID:     cfg.DiscordAppID,
			PublicKey: cfg.DiscordPublicKey,
			APIURL:    cfg.DiscordAPIURL,
			Guilds:    discordGuilds(f),
			Pool:      pool,
			Replays:   core, // replayed signatures, in the bot's inbound table
		}, log.With("adapter", "discord"), reg, core)
		if err != nil {
			return nil, fmt.Errorf("discord: %w", err)
		}
		if err := core.Register(discord); err != nil {
			return nil, fmt.Errorf("register discord: %w", err)
		}
		if cfg.DiscordPublicKey != "" {
			srv.Handle("POST /discord/interactions", discord.InteractionsHandler())
		}
		app.add("discord", discord.Start, func(context.Context) { discord.Stop() })
	}
	return app, nil
}

func logStop(log *slog.Logger, name string, err error) {
	if err != nil {
		log.Warn("stop", "component", name, "err", err)
	}
}

// secretKey is THREATDESK_SECRET_KEY or, unset with the embedded database,
// the key generated once into the data dir. Only its fingerprint is logged.
func secretKey(cfg *config.Config, log *slog.Logger) (*secrets.Key, error) {
	if cfg.Key != nil {
		log.Info("secret key from THREATDESK_SECRET_KEY", "fingerprint", cfg.Key.Fingerprint())
		return cfg.Key, nil
	}
	if cfg.DatabaseURL != "" {
		return nil, errors.New("THREATDESK_SECRET_KEY is required with DATABASE_URL: generate one with `openssl rand -hex 32` and give every replica the same")
	}
	path := filepath.Join(cfg.DataDir, secrets.KeyFile)
	key, created, err := secrets.LoadOrCreate(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("THREATDESK_SECRET_KEY is unset, so the key is kept in the data dir: %w", err)
	}
	if created {
		log.Warn("THREATDESK_SECRET_KEY is unset: generated a secret key into the data dir (mode 0600). Back it up with the database: "+
			"without it the case timelines no longer verify and stored secrets cannot be read. To run several replicas, "+
			"set THREATDESK_SECRET_KEY to its contents", "file", path, "fingerprint", key.Fingerprint())
	} else {
		log.Info("secret key from the data dir", "file", path, "fingerprint", key.Fingerprint())
	}
	return key, nil
}

func caseworkConfig(f config.File, key *secrets.Key) casework.Config {
	sla := f.Cases.SLA
	credits := map[string]int{}
	for _, o := range f.Orgs {
		credits[o.ID] = *o.CreditsPerQuarter
	}
	return casework.Config{
		Key: key,
		Targets: map[casework.Priority]casework.Target{
			casework.PriorityHigh:   {FirstResponse: sla.High.FirstResponse.D(), Conclusion: sla.High.Conclusion.D()},
			casework.PriorityMedium: {FirstResponse: sla.Medium.FirstResponse.D(), Conclusion: sla.Medium.Conclusion.D()},
			casework.PriorityLow:    {FirstResponse: sla.Low.FirstResponse.D(), Conclusion: sla.Low.Conclusion.D()},
		},
		WarnAt:       sla.WarnAt,
		SweepEvery:   sla.CheckInterval.D(),
		ReopenWindow: f.Cases.ReopenWindow.D(),
		OrgCredits:   credits,
		CreditsCap:   f.Cases.CreditsRolloverMax,
	}
}

func huntingConfig(cfg *config.Config) hunting.Config {
	f := cfg.File
	h := f.Hunting
	tenants := map[string]string{}
	scores := map[string]int{}
	tokens := map[string]string{}
	for _, o := range f.Orgs {
		for _, t := range o.Tenants {
			tenants[t] = o.ID
		}
		if o.IngestToken != "" {
			tokens[o.ID] = o.IngestToken.Value()
		}
		if o.NotifyScore != nil {
			scores[o.ID] = *o.NotifyScore
		}
	}
	hc := hunting.Config{
		Tenants:             tenants,
		IngestToken:         cfg.IngestToken.Value(),
		OrgIngestTokens:     tokens,
		Window:              h.CorrelationWindow.D(),
		CommonEntityDevices: h.CommonEntityDevices,
		NotifyScore:         h.NotifyScore,
		OrgNotifyScore:      scores,
		GroupWait:           h.GroupWait.D(),
		GroupInterval:       h.GroupInterval.D(),
		RepeatInterval:      h.RepeatInterval.D(),
		MaxBodyBytes:        h.MaxBodyBytes,
		MaxItems:            h.MaxItems,
		RepeatSeverity:      hunting.Severity(h.RepeatSeverity),
	}
	if g := h.Graph; g != nil {
		gc := &hunting.GraphConfig{Interval: g.Interval.D(), BaseURL: g.BaseURL, LoginURL: g.LoginURL}
		for _, t := range g.Tenants {
			gc.Tenants = append(gc.Tenants, hunting.GraphTenant{TenantID: t.TenantID, ClientID: t.ClientID, ClientSecret: t.Secret.Value()})
		}
		hc.Graph = gc
	}
	return hc
}

func botConfig(f config.File) bot.Config {
	c := bot.Config{
		Experts:  bot.UserIDs{Slack: f.Experts.Slack, Discord: f.Experts.Discord},
		Managers: bot.UserIDs{Slack: f.Managers.Slack, Discord: f.Managers.Discord},
		Admins:   bot.UserIDs{Slack: f.Admins.Slack, Discord: f.Admins.Discord},
		Delivery: bot.Delivery{Lease: f.Delivery.Lease.D()},
	}
	for _, o := range f.Orgs {
		org := bot.Org{ID: o.ID, Name: o.Name}
		if o.Slack != nil {
			org.Slack = &bot.Place{Workspace: o.Slack.Team, Channels: o.Slack.Channels}
		}
		if o.Discord != nil {
			org.Discord = &bot.Place{Workspace: o.Discord.Guild, Channels: o.Discord.Channels}
		}
		c.Orgs = append(c.Orgs, org)
	}
	if d := f.Desk.Slack; d != nil {
		c.Desk.Slack = &bot.DeskPlace{Workspace: d.Team, Channel: d.Channel}
	}
	if d := f.Desk.Discord; d != nil {
		c.Desk.Discord = &bot.DeskPlace{Workspace: d.Guild, Channel: d.Channel}
	}
	return c
}

// discordGuilds lists every guild the config names, where /experts is registered.
func discordGuilds(f config.File) []string {
	seen := map[string]bool{}
	var out []string
	add := func(g string) {
		if g != "" && !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	for _, o := range f.Orgs {
		if o.Discord != nil {
			add(o.Discord.Guild)
		}
	}
	if f.Desk.Discord != nil {
		add(f.Desk.Discord.Guild)
	}
	return out
}

// Start starts the components in order; on failure it stops those started.
func (a *application) Start(ctx context.Context) error {
	for _, c := range a.components {
		if err := c.start(ctx); err != nil {
			a.Stop(context.WithoutCancel(ctx))
			return fmt.Errorf("start %s: %w", c.name, err)
		}
		a.started++
	}
	return nil
}

// Stop stops the started components in reverse order. Calling it twice is safe.
func (a *application) Stop(ctx context.Context) {
	for ; a.started > 0; a.started-- {
		c := a.components[a.started-1]
		if c.stop != nil {
			c.stop(ctx)
		}
		a.log.Debug("stopped", "component", c.name)
	}
}
