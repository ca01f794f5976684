package casework

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SampleSweepResult counts what a retention sweep did.
type SampleSweepResult struct {
	// Deleted counts samples whose bytes were deleted.
	Deleted int
	// LinksForgotten counts expired upload and download links removed.
	LinksForgotten int
}

// SweepSamples deletes the bytes of every sample whose case was closed or
// withdrawn at least Config.SampleRetention ago, each in one transaction
// under the case's row lock with an EventSampleDeleted timeline entry (the
// sample row stays, with DeletedAt, as the record of what was held). A case
// reopened meanwhile keeps its samples. It also forgets links that expired
// more than SampleRetention ago. Safe on several replicas at once; Start
// runs it every 15 minutes.
//
//	res, err := svc.SweepSamples(ctx)
func (s *Service) SweepSamples(ctx context.Context) (SampleSweepResult, error) {
	var res SampleSweepResult
	now := s.cfg.now()
	cutoff := now.Add(-s.cfg.SampleRetention)
	seen := map[int64]bool{}
	for {
		rows, err := s.pool.Query(ctx, `SELECT s.id, s.case_number FROM case_samples s JOIN cases c ON c.number = s.case_number
 WHERE s.deleted_at IS NULL AND s.chunk_count > 0 AND c.status IN ('closed', 'withdrawn') AND c.closed_at <= $1
 ORDER BY s.id LIMIT $2`, cutoff, sweepBatch)
		if err != nil {
			return res, fmt.Errorf("sample retention: find expired samples: %w", err)
		}
		type due struct{ id, number int64 }
		batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
			var d due
			return d, r.Scan(&d.id, &d.number)
		})
		if err != nil {
			return res, fmt.Errorf("sample retention: find expired samples: %w", err)
		}
		fresh := 0
		for _, d := range batch {
			if seen[d.id] {
				continue
			}
			seen[d.id] = true
			fresh++
			ok, err := s.deleteSample(ctx, d.id, d.number)
			if err != nil && ctx.Err() != nil {
				return res, err
			}
			if err != nil {
				// Skipped: the other samples are deleted all the same.
				s.log.ErrorContext(ctx, "sample retention: a sample skipped; the others go on", "sample", d.id, "err", err)
				continue
			}
			if ok {
				res.Deleted++
			}
		}
		if len(batch) < sweepBatch || fresh == 0 {
			break
		}
	}
	for _, table := range []string{"case_upload_links", "case_download_links"} {
		tag, err := s.pool.Exec(ctx, `DELETE FROM `+table+` WHERE expires_at <= $1`, cutoff)
		if err != nil {
			return res, fmt.Errorf("sample retention: forget expired links: %w", err)
		}
		res.LinksForgotten += int(tag.RowsAffected())
	}
	return res, nil
}

// deleteSample deletes one sample's bytes if its case is still closed past
// the retention, and records it.
func (s *Service) deleteSample(ctx context.Context, id, number int64) (bool, error) {
	var changed *row
	var smp storedSample
	err := s.inTx(ctx, fmt.Sprintf("delete sample %d of %s", id, FormatRef(number)), func(tx pgx.Tx) error {
		x, now, err := s.lockCase(ctx, tx, AllOrgs(), number)
		if err != nil {
			return err
		}
		if (x.Status != StatusClosed && x.Status != StatusWithdrawn) || x.ClosedAt == nil ||
			x.ClosedAt.After(now.Add(-s.cfg.SampleRetention)) {
			return nil // reopened meanwhile
		}
		if smp, err = scanSample(tx.QueryRow(ctx, sampleSelect+` WHERE s.id = $1 AND s.deleted_at IS NULL`, id)); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // another replica did it
			}
			return fmt.Errorf("read sample %d of %s: %w", id, x.Ref, err)
		}
		// A download of it that began lately may still be streaming its
		// chunks (read outside this lock): the next sweep deletes it.
		var streaming bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM case_download_links WHERE sample_id = $1 AND used_at > $2)`,
			id, now.Add(-downloadGrace)).Scan(&streaming); err != nil {
			return fmt.Errorf("look for downloads of sample %d of %s: %w", id, x.Ref, err)
		}
		if streaming {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM case_sample_chunks WHERE sample_id = $1`, id); err != nil {
			return fmt.Errorf("delete the bytes of sample %d of %s: %w", id, x.Ref, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM case_download_links WHERE sample_id = $1`, id); err != nil {
			return fmt.Errorf("delete the download links of sample %d of %s: %w", id, x.Ref, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE case_samples SET deleted_at = $2 WHERE id = $1`, id, now); err != nil {
			return fmt.Errorf("mark sample %d of %s deleted: %w", id, x.Ref, err)
		}
		what := "withdrawn"
		if x.Status == StatusClosed {
			what = "closed"
		}
		if err := s.record(ctx, tx, x, now, System(), EventSampleDeleted, SampleDeletedEvent{Ref: x.Ref, SampleID: id,
			Name: smp.Name, Size: smp.Size, SHA256: smp.SHA256,
			Reason: fmt.Sprintf("retention: %s after the case was %s", humanDuration(s.cfg.SampleRetention), what)}, false); err != nil {
			return err
		}
		changed = x
		return s.saveRecord(ctx, tx, x, now)
	})
	if err != nil || changed == nil {
		return false, err
	}
	changed.runCommitted()
	s.smp.deleted.Inc()
	s.log.InfoContext(ctx, "sample deleted after retention", "ref", smp.Ref, "sample", id, "sha256", smp.SHA256)
	return true, nil
}

// downloadGrace is how long after a download began its sample is kept
// past retention: twice the web's default bound on one transfer (30
// minutes), so that retention never cuts a download short.
const downloadGrace = time.Hour

// sampleSweepJob is the retention sweep, a job of Start's scheduler.
func (s *Service) sampleSweepJob(ctx context.Context) {
	res, err := s.SweepSamples(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "sample retention sweep failed", "err", err)
		return
	}
	if res != (SampleSweepResult{}) {
		s.log.InfoContext(ctx, "sample retention sweep", "deleted", res.Deleted, "links_forgotten", res.LinksForgotten)
	}
}
