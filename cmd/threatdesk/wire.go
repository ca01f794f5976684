package main

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	discordadapter "github.com/threatdesk/threatdesk/adapters/discord"
	slackadapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/adapters/web"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/insight"
	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/httpapi"
	"github.com/threatdesk/threatdesk/internal/lifecycle"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/oncall"
)

// The web's Links are what the bot posts sample links with.
var _ bot.SampleLinks = web.Links{}

// wire builds every service from the configuration and mounts its routes.
// It is the only place where concrete types meet. The services it returns
// start in order and stop in reverse.
func wire(cfg *config.Config, pool *pgxpool.Pool, srv *httpapi.Server, log *slog.Logger, reg prometheus.Registerer) (*lifecycle.List, error) {
	app := lifecycle.NewList(log)
	f := cfg.File

	key, err := secretKey(cfg, log)
	if err != nil {
		return nil, err
	}
	cc := f.Cases
	cc.Key = key
	cases, err := casework.New(pool, cc, log, reg)
	if err != nil {
		return nil, fmt.Errorf("casework: %w", err)
	}
	hunt, err := hunting.New(pool, f.Hunting, log, reg)
	if err != nil {
		return nil, fmt.Errorf("hunting: %w", err)
	}
	srv.HandleLimited("POST /api/v1/alerts", f.Hunting.MaxBodyBytes+1, hunt.Handler())
	// The browser's pages (sample drop box, case tracker); the chat side gets their URLs from its Links().
	webHandler, err := mountWeb(cfg, srv, cases, pool, key, log, reg)
	if err != nil {
		return nil, err
	}

	app.Add("casework", cases)
	app.Add("hunting", hunt)
	if !cfg.SlackEnabled() && !cfg.DiscordEnabled() {
		// Without a platform there is nobody to talk to: no bot, and outbox
		// events wait until a platform is configured.
		log.Info("no chat platform is enabled: set SLACK_BOT_TOKEN with SLACK_APP_TOKEN or SLACK_SIGNING_SECRET for Slack, or DISCORD_BOT_TOKEN and DISCORD_APP_ID for Discord")
		// SIGHUP still reloads the orgs (tenants, ingest tokens, thresholds).
		rota, err := oncall.New(pool, f.Oncall, f.Location, log)
		if err != nil {
			return nil, fmt.Errorf("oncall: %w", err)
		}
		app.Add("reload", newReloader(cfg, pool, auditOnly{pool: pool}, cases, hunt, newLiveOnCall(rota), log))
		return app, nil
	}

	core, err := bot.New(f.Bot, pool, bot.NewCaseworkCases(cases), bot.NewHuntingIncidents(hunt).In(f.Location), log, reg)
	if err != nil {
		return nil, fmt.Errorf("chat is enabled, so THREATDESK_CONFIG must describe who talks where: %w", err)
	}
	// File samples in chat: upload links, Download sample, files posted in threads.
	if err := core.UseSamples(bot.NewCaseworkSamples(cases), webHandler.Links()); err != nil {
		return nil, fmt.Errorf("samples: %w", err)
	}
	// The experts' rotation: who is mentioned on new cards, told and paged.
	rota, err := oncall.New(pool, f.Oncall, f.Location, log)
	if err != nil {
		return nil, fmt.Errorf("oncall: %w", err)
	}
	liveRota := newLiveOnCall(rota)
	core.UseOnCall(liveRota)
	app.Add("bot", core)
	// Config changes without a restart: SIGHUP and /experts reload.
	reload := newReloader(cfg, pool, core, cases, hunt, liveRota, log)
	core.UseReloader(reload)
	app.Add("reload", reload)
	if f.Bot.Reports.Digest != nil {
		digest, err := bot.NewDigestScheduler(f.Bot.Reports, bot.NewCaseworkCases(cases), pool, log, reg)
		if err != nil {
			return nil, fmt.Errorf("weekly digest: %w", err)
		}
		app.Add("digest", digest)
	}
	// The case tracker: "/experts web" asks it for sign-in links, and it asks
	// the bot who a signed-in person is, by the running config.
	core.SetWebSignIn(webHandler)
	webHandler.SetDirectory(core)
	// Expert insight: sightings across orgs on desk cards, and campaigns.
	in, err := insight.New(pool, f.Insight, hunt, cases, log)
	if err != nil {
		return nil, fmt.Errorf("insight: %w", err)
	}
	core.SetInsight(bot.NewInsightService(in))

	if cfg.SlackEnabled() {
		sc := cfg.Slack
		sc.Replays = core // replayed signatures, in the bot's inbound table
		if sc.ClientID != "" {
			// Add to Slack: customer workspaces' tokens, sealed in the database.
			sc.Pool, sc.Key, sc.Orgs = pool, key, core
			sc.PublicURL, sc.PublicLocal = cfg.PublicBase()
		}
		slack, err := slackadapter.New(sc, log, reg, core)
		if err != nil {
			return nil, fmt.Errorf("slack: %w", err)
		}
		if err := core.Register(slack); err != nil {
			return nil, fmt.Errorf("register slack: %w", err)
		}
		if sc.SigningSecret != "" {
			h := slack.Handler()
			for _, route := range []string{"/slack/commands", "/slack/interactions", "/slack/events"} {
				srv.Handle("POST "+route, h)
			}
		}
		if sc.ClientID != "" {
			h := slack.InstallHandler()
			srv.Handle("GET /slack/install", h)
			srv.Handle("GET /slack/oauth/callback", h)
			core.UseInstaller(slack)
		}
		app.Add("slack", slack)
	}
	if cfg.DiscordEnabled() {
		dc := cfg.Discord
		dc.Guilds = f.Bot.DiscordGuilds()
		dc.Pool = pool
		dc.Replays = core // replayed signatures, in the bot's inbound table
		discord, err := discordadapter.New(dc, log, reg, core)
		if err != nil {
			return nil, fmt.Errorf("discord: %w", err)
		}
		if err := core.Register(discord); err != nil {
			return nil, fmt.Errorf("register discord: %w", err)
		}
		if dc.PublicKey != "" {
			srv.Handle("POST /discord/interactions", discord.InteractionsHandler())
		}
		app.Add("discord", discord)
	}
	return app, nil
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
