package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/outbox"
	"github.com/threatdesk/threatdesk/internal/plural"
)

// Configuration changes without a restart (issue 18). cmd/threatdesk reads
// and checks the config file again on SIGHUP or "/experts reload" (an
// admin's, through the Reloader it hands the bot with UseReloader); when it
// is valid every package switches to it at once (the bot with SetConfig),
// and RecordReload writes the audit row (config_reloads, migrations/0020)
// and, in the same transaction, the event that posts the summary in the
// desk thread of the pinned "Configuration" message. A file with problems
// changes nothing; it is audited too, and every problem is answered.

// Verbs, operations and the outbox event of reloads.
const (
	vReload              = "reload"
	opReload          op = "reload the configuration"
	kindConfigChanged    = "bot.config_reloaded"
	// targetConfig is the anchor of the pinned configuration message.
	targetConfig = "config"
	// maxReloadLines bounds the lines of one summary (the rest are counted).
	maxReloadLines = 30
)

// Reloader re-reads the configuration file, checks it and, when it is
// valid, switches every part of threatdesk to it (cmd/threatdesk).
type Reloader interface {
	Reload(ctx context.Context, by ReloadBy) (ReloadReport, error)
}

// ReloadBy is who asked for a reload: a chat user, or a signal.
type ReloadBy struct {
	// Platform is "slack", "discord" or "signal".
	Platform string `json:"platform"`
	// User is the user id, or the signal's name (SIGHUP).
	User string `json:"user"`
	Name string `json:"name,omitempty"`
}

// Label names who asked, for people.
func (r ReloadBy) Label() string {
	if r.Platform == "signal" {
		return "the operator (" + r.User + ")"
	}
	if r.Name != "" {
		return r.Name
	}
	return r.User
}

// ReloadReport is what a reload found.
type ReloadReport struct {
	// Applied is true when the file was valid and is now the running
	// config (Changes may still be empty: nothing changed).
	Applied bool `json:"applied"`
	// File is the SHA-256 of the file as read (hex).
	File string `json:"file,omitempty"`
	// Changes are the changes now in force, one readable line each.
	Changes []string `json:"changes,omitempty"`
	// Restart are the changes in the file that only a restart applies.
	Restart []string `json:"restart,omitempty"`
	// Problems are every problem of a refused file; nothing changed.
	Problems []string `json:"problems,omitempty"`
	// Summary describes the running config after the reload, for the
	// pinned message.
	Summary []string `json:"summary,omitempty"`
}

// UseReloader hands the bot what "/experts reload" calls; without one the
// command says reloads are not available.
func (b *Bot) UseReloader(r Reloader) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reloader = r
}

func (b *Bot) reloaderOf() Reloader {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.reloader
}

// CheckConfig reports what is wrong with cfg as SetConfig would take it
// (nil when it would be taken).
func (b *Bot) CheckConfig(cfg Config) error {
	_, err := b.prepare(cfg)
	return err
}

// SetConfig switches the bot to cfg at once: events that arrive from now
// on are worked with it, events in flight finish with the config they
// started with. What is only read at start keeps its running value
// (Delivery, Inbound, Reports, Location, Now: the caller reports changes
// to them as needing a restart). cfg is checked as New checks it; a bad one
// changes nothing.
func (b *Bot) SetConfig(cfg Config) error {
	next, err := b.prepare(cfg)
	if err != nil {
		return err
	}
	b.running.Store(&next)
	return nil
}

func (b *Bot) prepare(cfg Config) (Config, error) {
	old := b.running.Load()
	cfg.Delivery, cfg.Inbound, cfg.Reports, cfg.Location, cfg.Now = old.Delivery, old.Inbound, old.Reports, old.Location, old.Now
	cfg = cfg.WithDefaults()
	if err := errors.Join(cfg.Validate(), cfg.ready()); err != nil {
		return Config{}, fmt.Errorf("bot config: %w", err)
	}
	return cfg, nil
}

// configReloaded is kindConfigChanged's payload.
type configReloaded struct {
	By     ReloadBy     `json:"by"`
	At     time.Time    `json:"at"`
	Report ReloadReport `json:"report"`
	Desk   Dest         `json:"desk"`
}

// RecordReload writes the audit row of a reload and, in the same
// transaction, the event that posts its summary in the thread of the
// desk's pinned configuration message (posted and pinned by the first).
// When next is not nil (rep.Applied) the bot switches to it once the audit
// is written: a reload that cannot be audited changes nothing. next must
// have passed CheckConfig. A reload that changed nothing and needs no
// restart is audited only. It returns the audit row's id.
func (b *Bot) RecordReload(ctx context.Context, by ReloadBy, rep ReloadReport, next *Config) (int64, error) {
	b = b.current()
	after := b.cfg
	if next != nil {
		n, err := b.prepare(*next)
		if err != nil {
			return 0, err
		}
		after = n
	}
	at := b.now()
	var id int64
	err := pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `
INSERT INTO config_reloads (at, by_platform, by_user, by_name, applied, file_sha256, changes, restart, problems)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`, at, by.Platform, by.User, by.Name, rep.Applied, rep.File,
			nonNil(rep.Changes), nonNil(rep.Restart), nonNil(rep.Problems)).Scan(&id); err != nil {
			return fmt.Errorf("audit the reload: %w", err)
		}
		if rep.Applied && len(rep.Changes) == 0 && len(rep.Restart) == 0 {
			return nil
		}
		desk := after.Desk.DeskDest() // the desk after the reload
		if desk.Channel == "" {
			return nil
		}
		if _, err := outbox.Append(ctx, tx, outbox.Event{Kind: kindConfigChanged, Stream: configStream(desk),
			Payload: configReloaded{By: by, At: at, Report: rep, Desk: desk}}); err != nil {
			return fmt.Errorf("record the reload's summary: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if next != nil {
		b.running.Store(&after)
	}
	return id, nil
}

// ApplyConfig switches the bot to next without auditing it: a replica
// following a reload that another replica applied and audited. next must
// have passed CheckConfig.
func (b *Bot) ApplyConfig(next Config) error {
	b = b.current()
	n, err := b.prepare(next)
	if err != nil {
		return err
	}
	b.running.Store(&n)
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// configStream is the stream of a desk's configuration message: a desk
// moved by a reload gets a pinned message of its own.
func configStream(desk Dest) string {
	return "config:" + string(desk.Platform) + ":" + desk.Workspace + ":" + desk.Channel
}

// renderReload renders kindConfigChanged: the configuration message
// (posted and pinned when the desk has none, edited to the running config
// otherwise) and the reload's note in its thread.
func (b *Bot) renderReload(ctx context.Context, row outbox.Row) ([]part, bool, error) {
	if row.Kind != kindConfigChanged {
		return nil, false, nil
	}
	var ev configReloaded
	if err := json.Unmarshal(row.Payload, &ev); err != nil {
		return nil, true, &rowError{kind: Permanent, err: fmt.Errorf("decode %s: %w", row.Kind, err)}
	}
	card := configCard(ev)
	var parts []part
	if _, ok, err := b.anchorOf(ctx, row.Stream, targetConfig); err != nil {
		return nil, true, err
	} else if ok {
		if ev.Report.Applied {
			parts = append(parts, part{key: "card", update: targetConfig, msg: card})
		}
	} else {
		parts = append(parts, part{key: "card", dest: ev.Desk, msg: card, anchor: targetConfig, pin: true})
	}
	parts = append(parts, part{key: "note", thread: targetConfig, msg: reloadNote(ev)})
	return parts, true, nil
}

// configCard is the pinned message: what the running config is, and
// where its changes are listed.
func configCard(ev configReloaded) Message {
	lines := []Line{{T("Every change of threatdesk's configuration (SIGHUP or /experts reload) is listed in this thread: who, when and what changed.")}}
	for _, s := range ev.Report.Summary {
		lines = append(lines, Line{T("• " + s)})
	}
	lines = append(lines, Line{T("Last reload: "), B(ev.By.Label()), T(", "), Span{Text: ev.At.UTC().Format("Mon 2 Jan 2006 15:04 UTC"), Time: ev.At}, T(".")})
	return Message{Title: "Configuration", Text: lines, Fallback: "threatdesk configuration: changes in the thread"}
}

// reloadNote is one reload's summary in the configuration thread.
func reloadNote(ev configReloaded) Message {
	r := ev.Report
	var lines []Line
	when := Span{Text: ev.At.UTC().Format("Mon 2 Jan 15:04 UTC"), Time: ev.At}
	if !r.Applied {
		lines = append(lines, Line{B(ev.By.Label()), T(" reloaded the configuration at "), when,
			T(fmt.Sprintf(": refused, nothing changed. The file has %s:", plural.S(len(r.Problems), "problem")))})
		lines = append(lines, bullets(r.Problems)...)
		return Message{Text: lines, Fallback: "Configuration reload refused"}
	}
	lines = append(lines, Line{B(ev.By.Label()), T(" reloaded the configuration at "), when,
		T(fmt.Sprintf(": %s in force now.", plural.S(len(r.Changes), "change")))})
	lines = append(lines, bullets(r.Changes)...)
	if len(r.Restart) > 0 {
		lines = append(lines, Line{B("Needs a restart"), T(" (the running value stays until then):")})
		lines = append(lines, bullets(r.Restart)...)
	}
	return Message{Text: lines, Fallback: fmt.Sprintf("Configuration reloaded: %s", plural.S(len(r.Changes), "change"))}
}

// bullets are untrusted lines (they quote the file), at most maxReloadLines.
func bullets(items []string) []Line {
	var out []Line
	for i, s := range items {
		if i == maxReloadLines {
			out = append(out, Line{T(fmt.Sprintf("… and %d more (all in the audit table config_reloads)", len(items)-i))})
			break
		}
		out = append(out, Line{T("• "), U(cut(s, maxListLineRunes*3))})
	}
	return out
}

// reloadCommand runs "/experts reload" for an admin and answers with what
// changed, or every problem of the file.
func (b *Bot) reloadCommand(ctx context.Context, w who) (Message, error) {
	r := b.reloaderOf()
	if r == nil {
		return textMessage("Reloading the configuration is not available in this deployment."), nil
	}
	u := b.named(ctx, w.user)
	rep, err := r.Reload(ctx, ReloadBy{Platform: string(u.Platform), User: u.ID, Name: u.DisplayName})
	if err != nil {
		return Message{}, fmt.Errorf("reload: %w", err)
	}
	return reloadAnswer(rep), nil
}

// reloadAnswer is the private answer to "/experts reload".
func reloadAnswer(r ReloadReport) Message {
	if !r.Applied {
		lines := []Line{{T(fmt.Sprintf("The config file has %s, so nothing changed: threatdesk keeps running with the config it has.", plural.S(len(r.Problems), "problem")))}}
		lines = append(lines, bullets(r.Problems)...)
		return Message{Title: "Reload refused", Text: lines, Fallback: "Reload refused: " + plural.S(len(r.Problems), "problem")}
	}
	if len(r.Changes) == 0 && len(r.Restart) == 0 {
		return textMessage("The config file is valid and unchanged: nothing to do.")
	}
	lines := []Line{{T(fmt.Sprintf("Reloaded: %s in force now. The summary is in the thread of the pinned configuration message on the desk.", plural.S(len(r.Changes), "change")))}}
	lines = append(lines, bullets(r.Changes)...)
	if len(r.Restart) > 0 {
		lines = append(lines, Line{B("Needs a restart"), T(" (the running value stays until then):")})
		lines = append(lines, bullets(r.Restart)...)
	}
	return Message{Title: "Configuration reloaded", Text: lines, Fallback: "Configuration reloaded"}
}

// ConfigSummary describes cfg in a few lines for the pinned message: the
// orgs and where they talk, the desk, and who the experts, managers and
// admins are (ids only: the file's own words).
func ConfigSummary(cfg Config) []string {
	var out []string
	orgs := make([]string, 0, len(cfg.Orgs))
	for _, o := range cfg.Orgs {
		var where []string
		if o.Slack != nil {
			where = append(where, "Slack "+o.Slack.Team+" "+strings.Join(o.Slack.Channels, ", "))
		}
		if o.Discord != nil {
			where = append(where, "Discord "+o.Discord.Guild+" "+strings.Join(o.Discord.Channels, ", "))
		}
		orgs = append(orgs, o.ID+" ("+strings.Join(where, "; ")+")")
	}
	out = append(out, plural.S(len(cfg.Orgs), "org")+": "+strings.Join(orgs, ", "))
	d := cfg.Desk.DeskDest()
	out = append(out, "Desk: "+string(d.Platform)+" "+strings.TrimSpace(d.Workspace+" "+d.Channel))
	people := func(what string, u UserIDs) string {
		return fmt.Sprintf("%s: %d on Slack, %d on Discord", what, len(u.Slack), len(u.Discord))
	}
	out = append(out, people("Experts", cfg.Experts), people("Managers", cfg.Managers), people("Admins", cfg.Admins))
	return out
}

// Pinner is implemented by adapters whose platform pins messages in a
// channel (Slack pins.add, Discord's channel pins).
type Pinner interface {
	Pin(ctx context.Context, ref Ref) error
}

// pinPosted pins a posted part that asks for it. A pin that fails is
// logged (the message is posted; only the pin is missing).
func (b *Bot) pinPosted(ctx context.Context, p part, ref Ref) {
	if !p.pin {
		return
	}
	a, ok := b.adapter(ref.Platform)
	if !ok {
		return
	}
	pn, ok := a.(Pinner)
	if !ok {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Delivery.CallTimeout)
	defer cancel()
	if err := pn.Pin(cctx, ref); err != nil {
		b.log.Warn("the configuration message is posted but could not be pinned", "channel", ref.Channel, "err", err)
	}
}
