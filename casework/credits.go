package casework

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Credits: each org gets its Org.CreditsPerQuarter (else CreditsPerQuarter) at the start
// of every calendar quarter (in Config.Location, the configured timezone, as
// the reports' quarters), added to what it has left, the sum capped at
// CreditsCap: 10 a quarter, at most 20 with rollover, as the expert service
// does. Opening a case uses one; withdrawing it before an expert takes it
// gives it back. case_credits keeps the quarter a balance is of as its
// first day.

// quarterStart is the first instant of t's calendar quarter in s's zone.
func (s *Service) quarterStart(t time.Time) time.Time {
	loc := cmp.Or(s.cfg.Location, time.UTC)
	t = t.In(loc)
	m := time.Month((int(t.Month())-1)/3*3 + 1)
	return time.Date(t.Year(), m, 1, 0, 0, 0, 0, loc)
}

// storedQuarter is the quarter of a balance as stored (its first day, a
// date read as midnight UTC), in s's zone.
func (s *Service) storedQuarter(day time.Time) time.Time {
	y, m, d := day.UTC().Date()
	return s.quarterStart(time.Date(y, m, d, 12, 0, 0, 0, cmp.Or(s.cfg.Location, time.UTC)))
}

// quarterDay is the date that stores quarter q (its first day).
func quarterDay(q time.Time) time.Time {
	y, m, d := q.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func nextQuarter(q time.Time) time.Time { return q.AddDate(0, 3, 0) }

// rollover brings a balance held since quarter `from` forward to quarter `to`.
func (s *Service) rollover(org string, from time.Time, bal int, to time.Time) int {
	for q := from; q.Before(to); q = nextQuarter(q) {
		bal = min(bal+s.liveConfig().perQuarter(org), s.cfg.CreditsCap)
	}
	return bal
}

// lockCredits locks org's credit row (creating it with a fresh allowance)
// and returns its balance brought forward to now's quarter.
func (s *Service) lockCredits(ctx context.Context, tx pgx.Tx, org string, now time.Time) (int, error) {
	q := s.quarterStart(now)
	if _, err := tx.Exec(ctx, `INSERT INTO case_credits (org, quarter, balance, updated_at) VALUES ($1, $2, $3, $4)
 ON CONFLICT (org) DO NOTHING`, org, quarterDay(q), s.liveConfig().perQuarter(org), now); err != nil {
		return 0, fmt.Errorf("create credits of %s: %w", org, err)
	}
	var held time.Time
	var bal int
	if err := tx.QueryRow(ctx, `SELECT quarter, balance FROM case_credits WHERE org = $1 FOR UPDATE`, org).Scan(&held, &bal); err != nil {
		return 0, fmt.Errorf("lock credits of %s: %w", org, err)
	}
	return s.rollover(org, s.storedQuarter(held), bal, q), nil
}

func (s *Service) storeCredits(ctx context.Context, tx pgx.Tx, org string, bal int, now time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE case_credits SET quarter = $2, balance = $3, updated_at = $4 WHERE org = $1`,
		org, quarterDay(s.quarterStart(now)), bal, now); err != nil {
		return fmt.Errorf("store credits of %s: %w", org, err)
	}
	return nil
}

// refund gives x's credit back to its org (capped) and records it.
func (s *Service) refund(ctx context.Context, tx pgx.Tx, x *row, actor Actor, now time.Time) error {
	bal, err := s.lockCredits(ctx, tx, x.Org, now)
	if err != nil {
		return err
	}
	bal = min(bal+1, s.cfg.CreditsCap)
	if err := s.storeCredits(ctx, tx, x.Org, bal, now); err != nil {
		return err
	}
	x.CreditUsed = false
	x.onCommit(func() { s.m.credits.WithLabelValues(s.orgLabel(x.Org), "refunded").Inc() })
	return s.record(ctx, tx, x, now, actor, EventCreditsChanged, CreditsChangedEvent{
		Ref: x.Ref, Org: x.Org, Delta: +1, Balance: bal, Reason: "withdrawn before an expert took it",
		ResetsAt: nextQuarter(s.quarterStart(now)),
	}, true)
}

// CreditBalance is an org's credits now.
type CreditBalance struct {
	// Org is whose; Balance is how many cases it may still open this quarter.
	Org     string
	Balance int
	// PerQuarter is the org's quarterly allowance; Cap the rollover cap.
	PerQuarter int
	Cap        int
	// QuarterStart is the start of the current quarter; ResetsAt the start
	// of the next, when NextBalance becomes the balance (if none is used).
	QuarterStart time.Time
	ResetsAt     time.Time
	NextBalance  int
}

// Credits returns org's balance. An org member may read only their own org.
func (s *Service) Credits(ctx context.Context, v Viewer, org string) (*CreditBalance, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	if !v.sees(org) {
		return nil, fmt.Errorf("credits of %s: %w", org, ErrNotFound)
	}
	now := s.cfg.now()
	q := s.quarterStart(now)
	bal := s.liveConfig().perQuarter(org)
	var held time.Time
	var stored int
	err := s.pool.QueryRow(ctx, `SELECT quarter, balance FROM case_credits WHERE org = $1`, org).Scan(&held, &stored)
	switch {
	case err == nil:
		bal = s.rollover(org, s.storedQuarter(held), stored, q)
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("read credits of %s: %w", org, err)
	}
	next := nextQuarter(q)
	return &CreditBalance{Org: org, Balance: bal, PerQuarter: s.liveConfig().perQuarter(org), Cap: s.cfg.CreditsCap,
		QuarterStart: q, ResetsAt: next, NextBalance: min(bal+s.liveConfig().perQuarter(org), s.cfg.CreditsCap)}, nil
}
