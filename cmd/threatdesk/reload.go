package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/oncall"
)

// Configuration changes without a restart. On SIGHUP, or an admin's
// "/experts reload", the reloader reads the config file again
// (config.ReadFile: every problem at once). A bad file changes nothing and
// every problem is answered. A good one is audited (config_reloads) and
// switched to at once: the bot's orgs, channels, desk, experts, managers and
// admins, and casework's orgs, credits and the SLA targets of new cases.
// hunting's orgs (the tenants that route alerts, thresholds, ingest tokens)
// and the on-call rotation. What is read only at start (the rest of the
// hunting block, oncall.page_after, reports, delivery, samples, the time
// zone, new Discord guilds) keeps its running value and is listed as
// needing a restart.
//
// Several replicas on one database follow each other: every followEvery
// each compares the file of the newest applied reload (config_reloads,
// whichever replica applied it) with its own, and when its file has become
// that file it reads and applies it, without auditing it again. Every
// replica should read the same file; one whose file differs keeps its
// running configuration and says so in its log.

// followEvery is how often a replica looks for other replicas' reloads.
const followEvery = 2 * time.Second

// reloadBot is the bot's part in a reload: check its block, audit the
// reload (config_reloads, and the desk told), switch to it. Without a chat
// platform, auditOnly takes its place.
type reloadBot interface {
	CheckConfig(cfg bot.Config) error
	RecordReload(ctx context.Context, by bot.ReloadBy, rep bot.ReloadReport, next *bot.Config) (int64, error)
	ApplyConfig(next bot.Config) error
}

// auditOnly is reloadBot without a bot (no chat platform enabled): a
// SIGHUP still reloads the orgs' tenants and ingest tokens, audited in
// config_reloads for the other replicas to follow.
type auditOnly struct{ pool *pgxpool.Pool }

func (auditOnly) CheckConfig(bot.Config) error { return nil }
func (auditOnly) ApplyConfig(bot.Config) error { return nil }

func (a auditOnly) RecordReload(ctx context.Context, by bot.ReloadBy, rep bot.ReloadReport, _ *bot.Config) (int64, error) {
	var id int64
	err := a.pool.QueryRow(ctx, `
INSERT INTO config_reloads (at, by_platform, by_user, by_name, applied, file_sha256, changes, restart, problems)
VALUES (now(), $1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`, by.Platform, by.User, by.Name, rep.Applied, rep.File,
		append([]string{}, rep.Changes...), append([]string{}, rep.Restart...), append([]string{}, rep.Problems...)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("audit the reload: %w", err)
	}
	return id, nil
}

// reloader implements bot.Reloader.
type reloader struct {
	mu    sync.Mutex
	cfg   *config.Config
	pool  *pgxpool.Pool
	bot   reloadBot
	cases *casework.Service
	hunt  *hunting.Service
	rota  *liveOnCall
	log   *slog.Logger
	// running is the file now in force (what a reload's changes are
	// counted from); started is the file this process started with: the
	// settings that need a restart keep its values (the rotation its time
	// zone), so they are counted from it, reload after reload.
	running, started config.File
	// runningSHA is the SHA-256 of the file in force; warned is the
	// reload whose file this replica's differed from, said once; refused
	// the one whose file this replica refused (not tried again).
	runningSHA      string
	warned, refused int64
	// stop ends the SIGHUP watch (Start).
	stop func()
}

func newReloader(cfg *config.Config, pool *pgxpool.Pool, b reloadBot, cases *casework.Service, hunt *hunting.Service, rota *liveOnCall, log *slog.Logger) *reloader {
	r := &reloader{cfg: cfg, pool: pool, bot: b, cases: cases, hunt: hunt, rota: rota, log: log.With("component", "reload"),
		running: cfg.File, started: cfg.File}
	// The file as Load read it: read again now, it may have changed since.
	r.runningSHA = cfg.File.SHA256
	return r
}

// fileSHA is the SHA-256 of the file at path, in hex.
func fileSHA(path string) (string, error) {
	if path == "" {
		return "", errors.New("no config file")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// liveOnCall is the on-call rotation a reload may replace.
type liveOnCall struct {
	p atomic.Pointer[bot.OncallRota]
}

func newLiveOnCall(r *oncall.Service) *liveOnCall {
	l := &liveOnCall{}
	l.p.Store(bot.NewOncallRota(r))
	return l
}

func (l *liveOnCall) Current(ctx context.Context, now time.Time) (bot.OnCallNow, bool, error) {
	return l.p.Load().Current(ctx, now)
}

func (l *liveOnCall) WhoToPage(ctx context.Context, opened, now time.Time) (bot.OnCallPage, bool, error) {
	return l.p.Load().WhoToPage(ctx, opened, now)
}

func (l *liveOnCall) Take(ctx context.Context, m bot.OnCallMember, now time.Time) (bot.OnCallNow, error) {
	return l.p.Load().Take(ctx, m, now)
}

func (l *liveOnCall) DecodeEvent(kind string, payload json.RawMessage) (bot.PagerTaken, bool, error) {
	return l.p.Load().DecodeEvent(kind, payload)
}

// Reload implements bot.Reloader.
func (r *reloader) Reload(ctx context.Context, by bot.ReloadBy) (bot.ReloadReport, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reload(ctx, &by)
}

// reload reads the file again and switches to it when it is valid. by is
// who asked; nil follows another replica's reload: nothing is audited
// (that replica did) and a bad file is only logged. r.mu is held.
func (r *reloader) reload(ctx context.Context, by *bot.ReloadBy) (bot.ReloadReport, error) {
	return r.reloadFile(ctx, by, "")
}

// reloadFile is reload; want, when set, is the digest the file read must
// have (a follow checked it a moment before: a file changed since is not
// applied, and waits for the next look).
func (r *reloader) reloadFile(ctx context.Context, by *bot.ReloadBy, want string) (bot.ReloadReport, error) {
	var rep bot.ReloadReport
	var rota *oncall.Service
	f, err := r.cfg.ReadFile()
	if f != nil {
		rep.File = f.SHA256 // the bytes read, not the file as it is a moment later
	} else {
		rep.File, _ = fileSHA(r.cfg.ConfigPath)
	}
	if want != "" && rep.File != want {
		return rep, nil // changed since it was checked: neither applied nor refused
	}
	if err == nil {
		err = errors.Join(r.bot.CheckConfig(f.Bot), r.cases.CheckLive(f.Cases), r.hunt.CheckOrgs(f.Hunting), r.deskReachable(f))
		if err == nil {
			// The rotation's hand-overs stay in the time zone of the start.
			rota, err = oncall.New(r.pool, f.Oncall, r.started.Location, r.log)
		}
	}
	if err != nil {
		rep.Problems = problemLines(err)
		if by == nil {
			r.log.Error("another replica reloaded the configuration, but this replica's config file has problems: its running configuration stays",
				"problems", strings.Join(rep.Problems, "; "))
			return rep, nil
		}
		if _, err := r.bot.RecordReload(ctx, *by, rep, nil); err != nil {
			return rep, fmt.Errorf("audit the refused reload: %w", err)
		}
		r.log.Warn("configuration reload refused: the running configuration stays", "by", by.Platform+":"+by.User, "problems", len(rep.Problems))
		return rep, nil
	}
	rep.Applied = true
	rep.Changes, _ = diffFiles(&r.running, f)
	_, rep.Restart = diffFiles(&r.started, f)
	rep.Summary = bot.ConfigSummary(f.Bot)
	next := f.Bot
	if by == nil {
		if err := r.bot.ApplyConfig(next); err != nil {
			return bot.ReloadReport{}, fmt.Errorf("follow another replica's reload (nothing changed): %w", err)
		}
	} else {
		if _, err := r.bot.RecordReload(ctx, *by, rep, &next); err != nil {
			return bot.ReloadReport{}, fmt.Errorf("audit the reload (nothing changed): %w", err)
		}
	}
	// Checked above, under the same lock: these cannot fail.
	if err := errors.Join(r.cases.SetLive(f.Cases), r.hunt.SetOrgs(f.Hunting)); err != nil {
		r.log.Error("a checked configuration was refused", "err", err)
	}
	r.rota.p.Store(bot.NewOncallRota(rota))
	r.running, r.runningSHA = *f, rep.File
	who := "another replica"
	if by != nil {
		who = by.Platform + ":" + by.User
	}
	r.log.Info("configuration reloaded", "by", who, "changes", len(rep.Changes), "restart", len(rep.Restart))
	return rep, nil
}

// deskReachable refuses a desk moved to a platform this process does not
// connect to: every desk card would fail until a restart with its token.
func (r *reloader) deskReachable(f *config.File) error {
	p := f.Bot.Desk.DeskDest().Platform
	if p == "" || p == r.running.Bot.Desk.DeskDest().Platform {
		return nil
	}
	if (p == bot.Slack && !r.cfg.SlackEnabled()) || (p == bot.Discord && !r.cfg.DiscordEnabled()) {
		return fmt.Errorf("desk: it moves to %s, which this threatdesk does not connect to (set its token and restart first)", p)
	}
	return nil
}

// follow brings this replica to the file of the newest applied reload,
// whichever replica applied it: when that file is not the one in force
// and this replica's file is now that file (byte for byte), it is read
// and applied, unaudited. A file that differs (not there yet, or another
// file) is waited for, said once in the log; nothing else is applied.
func (r *reloader) follow(ctx context.Context) error {
	if r.cfg.ConfigPath == "" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var id int64
	var want string
	err := r.pool.QueryRow(ctx, `SELECT id, file_sha256 FROM config_reloads WHERE applied ORDER BY id DESC LIMIT 1`).Scan(&id, &want)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look for other replicas' reloads: %w", err)
	}
	if want == "" || want == r.runningSHA {
		return nil
	}
	have, err := fileSHA(r.cfg.ConfigPath)
	if err != nil || have != want {
		if r.warned != id {
			r.warned = id
			r.log.Warn("another replica reloaded a config file this replica's file is not (yet): it keeps its running configuration until its file is the same",
				"reload", id, "theirs_sha256", want, "this_sha256", have)
		}
		return nil
	}
	if r.refused == id {
		return nil // the same bytes would be refused again
	}
	rep, err := r.reloadFile(ctx, nil, want)
	if err != nil {
		return err
	}
	if !rep.Applied && rep.File == want {
		r.refused = id
	}
	return nil
}

// problemLines splits a joined error into its problems.
func problemLines(err error) []string {
	var out []string
	for l := range strings.SplitSeq(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Start reloads on each SIGHUP, and follows other replicas' reloads, until
// Stop.
func (r *reloader) Start(ctx context.Context) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	r.stop = func() {
		signal.Stop(sig)
		cancel()
		<-done
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(followEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := r.follow(ctx); err != nil && ctx.Err() == nil {
					// The database's own outage is reported elsewhere.
					r.log.Debug("could not look for other replicas' reloads", "err", err)
				}
			case <-sig:
				rep, err := r.Reload(ctx, bot.ReloadBy{Platform: "signal", User: "SIGHUP"})
				switch {
				case err != nil:
					r.log.Error("SIGHUP: reload failed; nothing changed", "err", err)
				case !rep.Applied:
					r.log.Error("SIGHUP: the config file has problems; nothing changed", "problems", strings.Join(rep.Problems, "; "))
				}
			}
		}
	}()
	return nil
}

// Stop stops watching for SIGHUP.
func (r *reloader) Stop() error {
	if r.stop != nil {
		r.stop()
	}
	return nil
}

// diffFiles lists what changed from old to next: changes now in force, and
// changes that wait for a restart. Secrets are never named.
func diffFiles(old, next *config.File) (changes, restart []string) {
	ob, nb := old.Bot, next.Bot
	olds := map[string]config.Org{}
	for _, o := range old.Orgs {
		olds[o.ID] = o
	}
	seen := map[string]bool{}
	for _, n := range next.Orgs {
		seen[n.ID] = true
		o, ok := olds[n.ID]
		if !ok {
			changes = append(changes, fmt.Sprintf("org %s (%s) added: %s", n.ID, n.Name, places(n.Org)))
			if len(n.Hunting.Tenants) > 0 {
				changes = append(changes, fmt.Sprintf("org %s's tenants route alerts to it: %s", n.ID, strings.Join(n.Hunting.Tenants, ", ")))
			}
			continue
		}
		if o.Name != n.Name {
			changes = append(changes, fmt.Sprintf("org %s renamed %q → %q", n.ID, o.Name, n.Name))
		}
		if op, np := places(o.Org), places(n.Org); op != np {
			changes = append(changes, fmt.Sprintf("org %s: %s → %s", n.ID, op, np))
		}
		if !reflect.DeepEqual(o.Casework.CreditsPerQuarter, n.Casework.CreditsPerQuarter) {
			changes = append(changes, fmt.Sprintf("org %s: credits per quarter changed", n.ID))
		}
		if !slices.Equal(o.Hunting.Tenants, n.Hunting.Tenants) || o.Hunting.NotifyScore != n.Hunting.NotifyScore ||
			o.Hunting.IngestTokenEnv != n.Hunting.IngestTokenEnv || o.Hunting.IngestToken.Value() != n.Hunting.IngestToken.Value() {
			changes = append(changes, fmt.Sprintf("org %s: its alert routing changed (tenants, notify_score or ingest token)", n.ID))
		}
	}
	for _, o := range old.Orgs {
		if !seen[o.ID] {
			changes = append(changes, fmt.Sprintf("org %s (%s) removed: its channels act for nobody now (its cases stay)", o.ID, o.Name))
		}
	}
	if od, nd := ob.Desk.DeskDest(), nb.Desk.DeskDest(); od != nd {
		changes = append(changes, fmt.Sprintf("desk moved: %s → %s", destLabel(od), destLabel(nd)))
	}
	changes = append(changes, people("experts", ob.Experts, nb.Experts)...)
	changes = append(changes, people("managers", ob.Managers, nb.Managers)...)
	changes = append(changes, people("admins", ob.Admins, nb.Admins)...)
	if !reflect.DeepEqual(casework.LiveChanges(old.Cases).SLA, casework.LiveChanges(next.Cases).SLA) {
		changes = append(changes, "cases.sla: new targets for cases opened from now on")
	}
	if !slices.Equal(ob.DiscordGuilds(), nb.DiscordGuilds()) {
		restart = append(restart, "Discord guilds: /experts is registered in a new guild at start")
	}
	if old.Timezone != next.Timezone {
		restart = append(restart, fmt.Sprintf("timezone %s → %s", old.Timezone, next.Timezone))
	}
	oo, no := old.Oncall, next.Oncall
	if oo.PageAfter != no.PageAfter {
		restart = append(restart, fmt.Sprintf("oncall.page_after %s → %s", oo.PageAfter, no.PageAfter))
	}
	oo.PageAfter, no.PageAfter = 0, 0
	if !reflect.DeepEqual(oo, no) {
		changes = append(changes, "oncall: the rotation or hand-over changed (takes of people still on it stand)")
	}
	if !reflect.DeepEqual(reportsOf(ob), reportsOf(nb)) {
		restart = append(restart, "reports (the digest)")
	}
	if !reflect.DeepEqual(ob.Delivery, nb.Delivery) {
		restart = append(restart, "delivery")
	}
	oc, nc := old.Cases, next.Cases
	oc.Orgs, nc.Orgs, oc.SLA, nc.SLA, oc.Now, nc.Now, oc.Key, nc.Key = nil, nil, casework.SLA{}, casework.SLA{}, nil, nil, nil, nil
	oc.Location, nc.Location = nil, nil // timezone, listed above
	oc.CreditsPerQuarter, nc.CreditsPerQuarter = 0, 0
	if !reflect.DeepEqual(oc, nc) || old.Samples != next.Samples {
		restart = append(restart, "cases and samples settings other than the SLA (reminders, auto-close, credits cap, retention, sizes)")
	}
	if !hunting.SameSettings(old.Hunting, next.Hunting) {
		restart = append(restart, "hunting settings other than the orgs")
	}
	if old.Insight.Window != next.Insight.Window {
		restart = append(restart, fmt.Sprintf("insight.window %s → %s", old.Insight.Window, next.Insight.Window))
	}
	return changes, restart
}

// reportsOf is the reports block without its location (set from timezone).
func reportsOf(c bot.Config) bot.Reports {
	r := c.Reports
	r.Location = nil
	return r
}

// places says where an org talks.
func places(o bot.Org) string {
	var out []string
	if s := o.Slack; s != nil {
		out = append(out, "Slack "+s.Team+" "+strings.Join(s.Channels, ", "))
	}
	if d := o.Discord; d != nil {
		out = append(out, "Discord "+d.Guild+" "+strings.Join(d.Channels, ", "))
	}
	if len(out) == 0 {
		return "no chat"
	}
	return strings.Join(out, "; ")
}

func destLabel(d bot.Dest) string {
	return strings.TrimSpace(string(d.Platform) + " " + d.Workspace + " " + d.Channel)
}

// people lists who was added to or removed from a list of user ids.
func people(what string, old, next bot.UserIDs) []string {
	var out []string
	diff := func(platform string, o, n []string) {
		var added, removed []string
		for _, id := range n {
			if !slices.Contains(o, id) {
				added = append(added, id)
			}
		}
		for _, id := range o {
			if !slices.Contains(n, id) {
				removed = append(removed, id)
			}
		}
		if len(added) > 0 {
			out = append(out, fmt.Sprintf("%s on %s: added %s", what, platform, strings.Join(added, ", ")))
		}
		if len(removed) > 0 {
			out = append(out, fmt.Sprintf("%s on %s: removed %s", what, platform, strings.Join(removed, ", ")))
		}
	}
	diff("Slack", old.Slack, next.Slack)
	diff("Discord", old.Discord, next.Discord)
	return out
}
