package bot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threatdesk/threatdesk/internal/cronlock"
	"github.com/threatdesk/threatdesk/internal/lifecycle"
)

// The weekly digest: every week at reports.digest.when (in the config's
// timezone) each org's service report of the week before is posted to the
// managers' channel, once, however many replicas run. DigestScheduler runs
// the schedule on every replica (gocron, with the advisory-lock locker so
// one replica runs the job at a time); the job calls QueueDigest, which
// records the week and its outbox event in one transaction the first time
// and does nothing after; the delivery workers render that event (one
// message per org, each part delivered once) like any other.

// Reports is the reports block of the config file and the calendar of
// every report: reports.digest, and the top-level timezone.
type Reports struct {
	// Digest, when set, posts each org's report of the week before to the
	// managers' channel every week (reports.digest). Nil: no digest.
	Digest *Digest `yaml:"digest"`
	// Location is the config's top-level timezone, in which report periods
	// are calendar periods and the digest is due; internal/config sets it.
	// Nil is UTC.
	Location *time.Location `yaml:"-"`
}

// Digest is reports.digest: where the weekly digest goes (a Slack channel
// or a Discord channel, one of the two) and when.
type Digest struct {
	Slack   *DigestSlack   `yaml:"slack"`
	Discord *DigestDiscord `yaml:"discord"`
	// When is the weekday and 24-hour time, in the config's timezone, at
	// which last week's digest is posted: "Mon 08:00" (the default).
	When string `yaml:"when"`
}

// DigestSlack is the managers' Slack channel (reports.digest.slack).
type DigestSlack struct {
	// Channel is the channel id (C…, G…). It must not be an org's channel:
	// the digest shows every org's figures.
	Channel string `yaml:"channel"`
}

// DigestDiscord is the managers' Discord channel (reports.digest.discord).
type DigestDiscord struct {
	// Guild and Channel are Discord ids (quoted numbers).
	Guild   string `yaml:"guild"`
	Channel string `yaml:"channel"`
}

// DefaultDigestWhen is when the digest is posted unless reports.digest.when says.
const DefaultDigestWhen = "Mon 08:00"

func (r Reports) withDefaults() Reports {
	if r.Digest != nil {
		d := *r.Digest
		d.When = cmp.Or(strings.TrimSpace(d.When), DefaultDigestWhen)
		r.Digest = &d
	}
	return r
}

// Dest is the managers' channel.
func (d Digest) Dest() Dest {
	switch {
	case d.Slack != nil:
		return Dest{Platform: Slack, Channel: d.Slack.Channel}
	case d.Discord != nil:
		return Dest{Platform: Discord, Workspace: d.Discord.Guild, Channel: d.Discord.Channel}
	}
	return Dest{}
}

// validate reports every wrong setting of the reports block; orgs are the
// configured orgs, whose channels the digest may not go to.
func (r Reports) validate(orgs []Org) error {
	d := r.Digest
	if d == nil {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case d.Slack == nil && d.Discord == nil:
		bad("reports.digest: say where the weekly digest goes: reports.digest.slack.channel, or reports.digest.discord.guild and .channel")
	case d.Slack != nil && d.Discord != nil:
		bad("reports.digest: set either slack or discord, not both")
	}
	if s := d.Slack; s != nil && !slackChanPattern.MatchString(s.Channel) {
		bad("reports.digest.slack.channel %q must be a Slack channel id such as C0123ABCD (channel details, at the bottom)", s.Channel)
	}
	if g := d.Discord; g != nil && (!IsDiscordID(g.Guild) || !IsDiscordID(g.Channel)) {
		bad("reports.digest.discord needs guild and channel as Discord ids (quoted numbers, 15 to 21 digits)")
	}
	if dest := d.Dest(); dest.Channel != "" {
		for _, o := range orgs {
			if pl := o.place(dest.Platform); pl != nil && slices.Contains(pl.Channels, dest.Channel) {
				bad("reports.digest: channel %s is org %s's channel, and the digest shows every org's figures: give the managers a channel of their own", dest.Channel, o.ID)
			}
		}
	}
	if _, err := parseWhen(cmp.Or(strings.TrimSpace(d.When), DefaultDigestWhen)); err != nil {
		bad("reports.digest.when %v", err)
	}
	return errors.Join(errs...)
}

// when is a weekly time: a weekday and a wall-clock time.
type when struct {
	day          time.Weekday
	hour, minute int
}

// parseWhen reads "Mon 08:00" (a weekday, Mon or Monday in any case, and a
// 24-hour time).
func parseWhen(s string) (when, error) {
	bad := func(why string) (when, error) {
		return when{}, fmt.Errorf(`%q is not a weekly time: %s; write a weekday and a 24-hour time, e.g. "Mon 08:00" (in the top-level timezone)`, s, why)
	}
	f := strings.Fields(s)
	if len(f) != 2 {
		return bad("expected two words")
	}
	var w when
	found := false
	for d := time.Sunday; d <= time.Saturday; d++ {
		if name := strings.ToLower(d.String()); strings.ToLower(f[0]) == name || strings.ToLower(f[0]) == name[:3] {
			w.day, found = d, true
		}
	}
	if !found {
		return bad(fmt.Sprintf("%q is not a weekday", f[0]))
	}
	hh, mm, ok := strings.Cut(f[1], ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 {
		return bad(fmt.Sprintf("%q is not a time such as 08:00", f[1]))
	}
	var err1, err2 error
	w.hour, err1 = strconv.Atoi(hh)
	w.minute, err2 = strconv.Atoi(mm)
	if err1 != nil || err2 != nil || w.hour < 0 || w.hour > 23 || w.minute < 0 || w.minute > 59 {
		return bad(fmt.Sprintf("%q is not a time between 00:00 and 23:59", f[1]))
	}
	return w, nil
}

// lastDue returns the latest time the digest was due at or before t.
func (w when) lastDue(t time.Time, loc *time.Location) time.Time {
	if due := w.dueIn(t, loc); !t.Before(due) {
		return due
	}
	return w.dueIn(t.In(loc).AddDate(0, 0, -7), loc)
}

// dueIn returns when the digest is due in the calendar week (Monday to
// Sunday, in loc) that contains t.
func (w when) dueIn(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	y, m, d := t.Date()
	monday := d - (int(t.Weekday())+6)%7
	offset := (int(w.day) + 6) % 7 // days after Monday
	return time.Date(y, m, monday+offset, w.hour, w.minute, 0, 0, loc)
}

// DigestJobName names the weekly digest's gocron job and its advisory lock.
const DigestJobName = "bot-weekly-digest"

// DigestQueuer queues the weekly digest (casework's QueueDigest, through
// CaseworkCases).
type DigestQueuer interface {
	QueueDigest(ctx context.Context, loc *time.Location, due func(now time.Time) time.Time) (bool, error)
}

// DigestScheduler queues the weekly digest at reports.digest.when. Run it
// on every replica: the digest is queued once per week whichever replicas
// run. A due time missed (every replica down, or the database failing) is
// caught up at the next start or hourly check: the digest is late, not
// lost, and is of the week that due time would have queued.
type DigestScheduler struct {
	loc  *time.Location
	when when
	q    DigestQueuer
	pool *pgxpool.Pool
	log  *slog.Logger
	life *lifecycle.Group

	job gocron.Job
}

// NewDigestScheduler returns the digest's scheduler for cfg, whose Digest
// must be set (and valid: Config.Validate checks it).
func NewDigestScheduler(cfg Reports, q DigestQueuer, pool *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer) (*DigestScheduler, error) {
	cfg = cfg.withDefaults()
	if cfg.Digest == nil {
		return nil, errors.New("digest scheduler: reports.digest is not configured")
	}
	w, err := parseWhen(cfg.Digest.When)
	if err != nil {
		return nil, fmt.Errorf("digest scheduler: reports.digest.when %w", err)
	}
	if q == nil || pool == nil {
		return nil, errors.New("digest scheduler: a queue and a database pool are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "digest")
	life, err := lifecycle.New("digest", lifecycle.Options{Log: log, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("digest scheduler: %w", err)
	}
	loc := cmp.Or(cfg.Location, time.UTC)
	return &DigestScheduler{loc: loc, when: w, q: q, pool: pool, log: log, life: life}, nil
}

// Start schedules the job weekly at the configured time, and a check at
// start and every hour that queues the latest due time's digest if no
// replica has. It runs until Stop or
// until ctx ends; a second Start is an error (lifecycle.ErrStarted).
func (d *DigestScheduler) Start(ctx context.Context) error {
	return d.life.Start(ctx, func(ctx context.Context) error {
		sched, err := gocron.NewScheduler(gocron.WithLocation(d.loc), gocron.WithDistributedLocker(cronlock.New(d.pool, "threatdesk")))
		if err != nil {
			return fmt.Errorf("digest: create scheduler: %w", err)
		}
		d.job, err = sched.NewJob(
			gocron.WeeklyJob(1, gocron.NewWeekdays(d.when.day), gocron.NewAtTimes(gocron.NewAtTime(uint(d.when.hour), uint(d.when.minute), 0))),
			gocron.NewTask(func(ctx context.Context) {
				_ = d.life.Guard(DigestJobName, func() error { d.run(ctx); return nil }) // a panic is logged and counted
			}),
			gocron.WithName(DigestJobName),
			gocron.WithContext(ctx),
			gocron.WithSingletonMode(gocron.LimitModeReschedule))
		if err != nil {
			_ = sched.Shutdown()
			return fmt.Errorf("digest: schedule: %w", err)
		}
		// At start and every hour, the latest due time's digest is queued
		// if no replica has: one missed while every replica was down (over
		// the week's end too), or whose queueing failed, goes out late
		// rather than never. Queued already, it is a no-op.
		_, err = sched.NewJob(gocron.DurationJob(time.Hour),
			gocron.NewTask(func(ctx context.Context) {
				_ = d.life.Guard(DigestJobName, func() error { d.run(ctx); return nil })
			}),
			gocron.WithName(DigestJobName+"-check"),
			gocron.WithContext(ctx),
			gocron.WithSingletonMode(gocron.LimitModeReschedule),
			gocron.WithStartAt(gocron.WithStartImmediately()))
		if err != nil {
			_ = sched.Shutdown()
			return fmt.Errorf("digest: schedule the hourly check: %w", err)
		}
		sched.Start()
		d.life.Go("scheduler", func(ctx context.Context) error {
			<-ctx.Done()
			if err := sched.Shutdown(); err != nil {
				return fmt.Errorf("digest: stop the scheduler: %w", err)
			}
			return nil
		})
		return nil
	})
}

// Stop stops the schedule, waiting for a run in progress. It is safe
// before Start and more than once.
func (d *DigestScheduler) Stop() error { return d.life.Stop() }

// NextRun is when the job runs next (after Start).
func (d *DigestScheduler) NextRun() (time.Time, error) {
	if d.job == nil {
		return time.Time{}, errors.New("digest: not started")
	}
	return d.job.NextRun()
}

// RunOnce does what the job does: it queues the digest of the latest due
// time unless a replica already has, and reports whether this call queued
// it.
func (d *DigestScheduler) RunOnce(ctx context.Context) (bool, error) {
	return d.q.QueueDigest(ctx, d.loc, func(now time.Time) time.Time { return d.when.lastDue(now, d.loc) })
}

func (d *DigestScheduler) run(ctx context.Context) {
	queued, err := d.RunOnce(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		d.log.ErrorContext(ctx, "weekly digest not queued; the hourly check tries again", "err", err)
	case queued:
		d.log.InfoContext(ctx, "weekly digest queued")
	}
}
