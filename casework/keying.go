package casework

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The keyed timeline.
//
// Every entry's hash is an HMAC under a subkey of THREATDESK_SECRET_KEY, and
// each case row carries a MAC over its chain head, its length and its count
// of legacy entries (timeline_mac). Whoever can write the tables but lacks
// the key can no longer rewrite an entry and rehash the chain: the entry's
// HMAC, or the head's MAC, fails.
//
// Entries written before the chain was keyed (migration 0008) stay as they
// are and verify as before (SHA-256), but only as the leading entries of a
// case numbered up to the legacy cutoff recorded by that migration, and only
// as many as it recorded (timeline_legacy_len, bound by the head MAC). The
// first Start with the key seals them: in one transaction it MACs the
// cutoff and every legacy case's row; later starts check the cutoff's MAC,
// which also catches a different key. New entries of a legacy case are
// keyed and chain onto its legacy head.
//
// Start schedules VerifyAll every Config.TimelineCheckEvery under an
// advisory lock: each broken case is logged at error level ("timeline
// tamper detected") and counted in threatdesk_casework_timeline_breaks_total;
// threatdesk_casework_timeline_broken_cases is the count of the last check.

// TimelineCheckJobName names the scheduled timeline check and its advisory lock.
const TimelineCheckJobName = "casework-timeline-check"

// verifyPage is how many cases VerifyAll reads per snapshot.
const verifyPage = 500

// keyState is the timeline keying record.
type keyState struct {
	// cutoff: cases numbered up to it may hold legacy entries; no later case may.
	cutoff int64
	// sealed: the record's MAC verified, so every case row carries a MAC.
	sealed bool
}

// readKeying reads (forUpdate: and locks) the keying record and checks its
// MAC when it has one.
func (s *Service) readKeying(ctx context.Context, q pgxQuerier, forUpdate bool) (*keyState, error) {
	sql := `SELECT legacy_cutoff, mac FROM casework_timeline_keying`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	var ks keyState
	var mac []byte
	err := q.QueryRow(ctx, sql).Scan(&ks.cutoff, &mac)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, &KeyingError{Reason: "the keying record (table casework_timeline_keying) is missing; the migration always creates it, so it was deleted: restore it from a backup"}
	}
	if err != nil {
		return nil, fmt.Errorf("read timeline keying: %w", err)
	}
	if mac != nil {
		if !hmac.Equal(mac, s.keyingMAC(ks.cutoff)) {
			return nil, &KeyingError{Reason: fmt.Sprintf("the keying record does not verify with this THREATDESK_SECRET_KEY (fingerprint %s): "+
				"this database's timelines were keyed with another key, or the record was changed. Start threatdesk with the key "+
				"the database was first started with (the generated one is the file secret.key in the data dir)", s.cfg.Key.Fingerprint())}
		}
		ks.sealed = true
	}
	return &ks, nil
}

// sealLegacy keys the timelines on the first start with the key: it MACs
// every legacy case's row and the legacy cutoff, in one transaction. On
// later starts it only checks the cutoff's MAC (a *KeyingError when it
// fails). It returns how many cases it sealed.
func (s *Service) sealLegacy(ctx context.Context) (int, error) {
	sealed := 0
	err := s.inTx(ctx, "key the case timelines", func(tx pgx.Tx) error {
		ks, err := s.readKeying(ctx, tx, true)
		if err != nil || ks.sealed {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT "+caseCols+caseFrom+
			" WHERE c.number <= $1 AND c.timeline_mac IS NULL ORDER BY c.number FOR NO KEY UPDATE OF c", ks.cutoff)
		if err != nil {
			return fmt.Errorf("find legacy timelines: %w", err)
		}
		var legacy []*row
		for rows.Next() {
			x, err := s.scanRow(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("find legacy timelines: %w", err)
			}
			legacy = append(legacy, x)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("find legacy timelines: %w", err)
		}
		b := &pgx.Batch{}
		for _, x := range legacy {
			b.Queue(`UPDATE cases SET timeline_mac = $2 WHERE number = $1`, x.Number, s.headMAC(x))
		}
		b.Queue(`UPDATE casework_timeline_keying SET mac = $1, keyed_at = $2`, s.keyingMAC(ks.cutoff), s.cfg.now())
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("seal legacy timelines: %w", err)
		}
		sealed = len(legacy)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if sealed > 0 {
		s.log.InfoContext(ctx, "keyed the case timelines: legacy entries sealed", "cases", sealed)
	}
	return sealed, nil
}

// TimelineCheck is the outcome of VerifyAll.
type TimelineCheck struct {
	// Checked is how many cases were verified.
	Checked int
	// Broken holds one error per case whose timeline fails (a *TamperError),
	// in case order.
	Broken []error
}

// VerifyAll verifies every case's timeline, a page of cases per snapshot.
// A broken case does not stop the check; a keying record that fails
// verification does (a *KeyingError), since then no case can be trusted.
func (s *Service) VerifyAll(ctx context.Context) (*TimelineCheck, error) {
	res := &TimelineCheck{}
	var after int64
	for {
		last, n, err := s.verifyPage(ctx, after, res)
		if err != nil {
			return res, err
		}
		if n < verifyPage {
			return res, nil
		}
		after = last
	}
}

func (s *Service) verifyPage(ctx context.Context, after int64, res *TimelineCheck) (last int64, n int, err error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return 0, 0, fmt.Errorf("verify timelines: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	ks, err := s.readKeying(ctx, tx, false)
	if err != nil {
		return 0, 0, err
	}
	rows, err := tx.Query(ctx, "SELECT "+caseCols+caseFrom+" WHERE c.number > $1 ORDER BY c.number LIMIT $2", after, verifyPage)
	if err != nil {
		return 0, 0, fmt.Errorf("verify timelines: read cases: %w", err)
	}
	var cases []*row
	for rows.Next() {
		x, err := s.scanRow(rows)
		if err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("verify timelines: read cases: %w", err)
		}
		cases = append(cases, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("verify timelines: read cases: %w", err)
	}
	if len(cases) == 0 {
		return after, 0, nil
	}
	numbers := make([]int64, len(cases))
	for i, x := range cases {
		numbers[i] = x.Number
	}
	entries, err := s.readEntries(ctx, tx, numbers)
	if err != nil {
		return 0, 0, err
	}
	for _, x := range cases {
		if err := s.verifyChain(x, entries[x.Number], ks); err != nil {
			var te *TamperError
			if !errors.As(err, &te) {
				return 0, 0, err
			}
			res.Broken = append(res.Broken, err)
		}
		res.Checked++
	}
	return cases[len(cases)-1].Number, len(cases), nil
}

// checkTimelines is the scheduled check: VerifyAll, with every break and a
// failing keying record logged at error level and counted.
func (s *Service) checkTimelines(ctx context.Context) {
	start := time.Now()
	res, err := s.VerifyAll(ctx)
	var ke *KeyingError
	switch {
	case errors.As(err, &ke):
		s.m.timelineBreaks.Inc()
		s.log.ErrorContext(ctx, "timeline tamper detected: the keying record fails", "err", err)
		return
	case err != nil:
		if ctx.Err() == nil { // not merely stopped
			s.log.ErrorContext(ctx, "timeline check failed", "err", err)
		}
		return
	}
	for _, b := range res.Broken {
		var te *TamperError
		errors.As(b, &te)
		s.log.ErrorContext(ctx, "timeline tamper detected", "ref", te.Ref, "seq", te.Seq, "reason", te.Reason)
	}
	s.m.timelineBreaks.Add(float64(len(res.Broken)))
	s.m.timelineBroken.Set(float64(len(res.Broken)))
	s.m.timelineLastCheck.Set(float64(s.cfg.now().Unix()))
	s.log.DebugContext(ctx, "timeline check", "cases", res.Checked, "broken", len(res.Broken), "took", time.Since(start))
}
