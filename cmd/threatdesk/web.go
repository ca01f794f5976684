package main

import (
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatdesk/threatdesk/adapters/web"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/httpapi"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// mountWeb builds the browser adapter on THREATDESK_PUBLIC_URL and mounts
// its routes, each with its own body cap. Its Links build the URLs that
// chat messages carry; the case tracker's sign-in links come from
// "/experts web" once the bot is wired to it (wire).
func mountWeb(cfg *config.Config, srv *httpapi.Server, cases *casework.Service, pool *pgxpool.Pool, key *secrets.Key,
	log *slog.Logger, reg prometheus.Registerer) (*web.Handler, error) {
	base, local := cfg.PublicBase()
	links, err := web.NewLinks(base, local)
	if err != nil {
		return nil, fmt.Errorf("THREATDESK_PUBLIC_URL: %w", err)
	}
	if local {
		log.Info("THREATDESK_PUBLIC_URL is not set: sample upload and download links and the case tracker's sign-in links point at " + base +
			" and only work on this machine; set it to the address people reach threatdesk at")
	}
	h, err := web.New(web.Config{Links: links, Samples: cases, MaxSampleBytes: cases.Config().SampleMaxBytes,
		Pool: pool, Key: key, Cases: cases, Location: cfg.File.Location}, log, reg)
	if err != nil {
		return nil, err
	}
	for _, r := range h.Routes() {
		srv.HandleLimited(r.Pattern, r.MaxBody, r.Handler)
	}
	return h, nil
}
