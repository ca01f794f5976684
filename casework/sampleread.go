package casework

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threatdesk/threatdesk/internal/secrets"
)

const sampleSelect = `SELECT s.id, s.case_number, s.source, s.side, s.name, s.size, s.md5, s.sha1, s.sha256,
 s.chunk_size, s.chunk_count, s.uploader_platform, s.uploader_workspace, s.uploader_user, s.uploader_name, s.uploader_address,
 s.chat_platform, s.chat_workspace, s.chat_channel, s.chat_message, s.chat_file, s.created_at, s.deleted_at,
 c.subject_kind, c.subject_id
 FROM case_samples s JOIN cases c ON c.number = s.case_number`

// storedSample is a sample with the columns only the store needs.
type storedSample struct {
	Sample
	number     int64
	chunkSize  int
	chunkCount int
}

func scanSample(r pgx.Row) (storedSample, error) {
	var x storedSample
	var sub Subject
	err := r.Scan(&x.ID, &x.number, &x.Source, &x.Side, &x.Name, &x.Size, &x.MD5, &x.SHA1, &x.SHA256,
		&x.chunkSize, &x.chunkCount, &x.Uploader.Platform, &x.Uploader.Workspace, &x.Uploader.UserID, &x.Uploader.DisplayName,
		&x.Address, &x.Chat.Platform, &x.Chat.Workspace, &x.Chat.Channel, &x.Chat.Message, &x.FileID, &x.CreatedAt, &x.DeletedAt,
		&sub.Kind, &sub.ID)
	if err != nil {
		return x, err
	}
	x.Ref = FormatRef(x.number)
	x.CreatedAt = x.CreatedAt.UTC()
	x.DeletedAt = utcPtr(x.DeletedAt)
	x.Match, x.MatchText = matchSubject(sub, x.MD5, x.SHA1, x.SHA256)
	return x, nil
}

func collectSamples(rows pgx.Rows) ([]Sample, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Sample, error) {
		x, err := scanSample(r)
		return x.Sample, err
	})
	if err != nil {
		return nil, fmt.Errorf("read samples: %w", err)
	}
	return out, nil
}

// Samples returns the samples of a case in the order they arrived, deleted
// ones included (DeletedAt set), as v sees the case: another org's member
// gets ErrNotFound.
//
//	smps, err := svc.Samples(ctx, casework.AllOrgs(), "EOD-12") // the desk card's Download sample buttons
func (s *Service) Samples(ctx context.Context, v Viewer, ref string) ([]Sample, error) {
	number, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	if _, err := s.load(ctx, s.pool, v, number, false); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, sampleSelect+` WHERE s.case_number = $1 AND s.chunk_count > 0 ORDER BY s.id`, number)
	if err != nil {
		return nil, fmt.Errorf("read samples of %s: %w", FormatRef(number), err)
	}
	return collectSamples(rows)
}

// DownloadLink is an expert's download link. Token goes into the URL
// (adapters/web Links.Download); send it to the expert privately.
type DownloadLink struct {
	// Ref and Sample say what it downloads; Link is the id the timeline
	// knows it by.
	Ref    string
	Sample Sample
	Link   string
	// Token is the secret part of the URL.
	Token string
	// Expert is who it was issued to; ExpiresAt when it stops working
	// (DownloadLinkTTL after issue).
	Expert    Person
	ExpiresAt time.Time
}

// IssueDownloadLink issues a short-lived (DownloadLinkTTL), single-use link to download
// sample sampleID of the case named by ref, for the expert by, and records
// it on the timeline. Only experts may: a member of any org gets
// ErrNotFound, as for a sample that does not exist (nothing says whether
// it does); a manager or threatdesk itself is refused with ErrInvalid. A
// sample whose bytes were deleted is refused with a sentence saying when.
//
//	dl, err := svc.IssueDownloadLink(ctx, "EOD-12", sampleID, expertActor)
func (s *Service) IssueDownloadLink(ctx context.Context, ref string, sampleID int64, by Actor) (*DownloadLink, error) {
	if err := by.validate(); err != nil {
		return nil, err
	}
	number, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	switch by.Role {
	case RoleExpert:
	case RoleRequester:
		return nil, fmt.Errorf("sample %d of %s: %w", sampleID, FormatRef(number), ErrNotFound)
	default:
		return nil, fmt.Errorf("only threat experts may download samples, not a %s: %w", by.Role, ErrInvalid)
	}
	token, hash, err := newToken()
	if err != nil {
		return nil, err
	}
	var out *DownloadLink
	var changed *row
	err = s.inTx(ctx, "issue download link for "+FormatRef(number), func(tx pgx.Tx) error {
		x, now, err := s.lockCase(ctx, tx, AllOrgs(), number)
		if err != nil {
			return err
		}
		smp, err := scanSample(tx.QueryRow(ctx, sampleSelect+` WHERE s.id = $1 AND s.case_number = $2 AND s.chunk_count > 0`,
			sampleID, number))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%s has no sample %d: %w", x.Ref, sampleID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read sample %d of %s: %w", sampleID, x.Ref, err)
		}
		if smp.DeletedAt != nil {
			return fmt.Errorf("sample %d of %s (%s) was deleted on %s, %s after the case closed: %w", sampleID, x.Ref,
				smp.Name, smp.DeletedAt.Format("2 January 2006"), humanDuration(s.cfg.SampleRetention), ErrInvalid)
		}
		exp := now.Add(DownloadLinkTTL)
		if _, err := tx.Exec(ctx, `INSERT INTO case_download_links (token_hash, sample_id, expert_platform, expert_workspace,
 expert_user, expert_name, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			hash, sampleID, by.Platform, by.Workspace, by.UserID, by.DisplayName, now, exp); err != nil {
			return fmt.Errorf("store download link of %s: %w", x.Ref, err)
		}
		out = &DownloadLink{Ref: x.Ref, Sample: smp.Sample, Link: linkID(hash), Token: token, Expert: by.Person, ExpiresAt: exp}
		if err := s.record(ctx, tx, x, now, by, EventDownloadLinkIssued, DownloadLinkIssuedEvent{Ref: x.Ref, SampleID: sampleID,
			Name: smp.Name, SHA256: smp.SHA256, Link: out.Link, Expert: by.Person, ExpiresAt: exp}, false); err != nil {
			return err
		}
		changed = x
		return s.saveRecord(ctx, tx, x, now)
	})
	if err != nil {
		s.smp.refusal(err)
		return nil, err
	}
	changed.runCommitted()
	s.smp.linkIssued.WithLabelValues("download").Inc()
	return out, nil
}

// SampleDownload is an opened sample: its description, who the link was
// issued to, and its decrypted bytes. Close Body when done.
type SampleDownload struct {
	Sample Sample
	// Expert is who the link was issued to; ExpiresAt when it stops working.
	Expert    Person
	ExpiresAt time.Time
	// Body yields the file's bytes, decrypted chunk by chunk; a chunk that
	// does not decrypt, or a file whose SHA-256 differs from the one
	// recorded, ends it with an error instead of io.EOF.
	Body io.ReadCloser
}

// OpenSample opens the sample of a download link, records "downloaded by
// <expert>" from address on the case's timeline, and returns its bytes to
// stream. The link works once, until it expires. An unknown, used,
// expired or foreign token, a sample deleted since, or an expert who is
// one no more, is a *LinkError.
//
//	dl, err := svc.OpenSample(ctx, token, r.RemoteAddr, isExpert)
//	defer dl.Body.Close()
//
// stillExpert, when not nil, says whether the expert the link was issued
// to is one still (the running config): a link outlives no expert's role.
func (s *Service) OpenSample(ctx context.Context, token, address string, stillExpert func(Person) bool) (*SampleDownload, error) {
	dl, err := s.openSample(ctx, token, address, stillExpert)
	if err != nil {
		s.smp.refusal(err)
		return nil, err
	}
	s.smp.downloads.Inc()
	return dl, nil
}

func (s *Service) openSample(ctx context.Context, token, address string, stillExpert func(Person) bool) (*SampleDownload, error) {
	hash, ok := tokenHash(token)
	if !ok {
		return nil, &LinkError{Problem: LinkUnknown}
	}
	if len(address) > 200 {
		address = address[:200]
	}
	var out *SampleDownload
	var smp storedSample
	var changed *row
	err := s.inTx(ctx, "open sample", func(tx pgx.Tx) error {
		var id int64
		var exp time.Time
		var expert Person
		var used *time.Time
		err := tx.QueryRow(ctx, `SELECT sample_id, expires_at, used_at, expert_platform, expert_workspace, expert_user, expert_name
 FROM case_download_links WHERE token_hash = $1 FOR UPDATE`, hash).Scan(&id, &exp, &used, &expert.Platform, &expert.Workspace,
			&expert.UserID, &expert.DisplayName)
		if errors.Is(err, pgx.ErrNoRows) {
			return &LinkError{Problem: LinkUnknown}
		}
		if err != nil {
			return fmt.Errorf("look up download link: %w", err)
		}
		if used != nil {
			return &LinkError{Problem: LinkDownloaded, At: used.UTC()}
		}
		if !s.cfg.now().Before(exp) {
			return &LinkError{Problem: LinkExpired, At: exp.UTC()}
		}
		if stillExpert != nil && !stillExpert(expert) {
			return &LinkError{Problem: LinkNotExpert}
		}
		if smp, err = scanSample(tx.QueryRow(ctx, sampleSelect+` WHERE s.id = $1`, id)); err != nil {
			return fmt.Errorf("read sample %d: %w", id, err)
		}
		x, now, err := s.lockCase(ctx, tx, AllOrgs(), smp.number)
		if err != nil {
			return err
		}
		// Read again under the case lock: the retention sweep deletes under it.
		var deleted *time.Time
		if err := tx.QueryRow(ctx, `SELECT deleted_at FROM case_samples WHERE id = $1`, id).Scan(&deleted); err != nil {
			return fmt.Errorf("read sample %d: %w", id, err)
		}
		if deleted != nil {
			return &LinkError{Problem: LinkSampleDeleted, At: deleted.UTC()}
		}
		if err := s.record(ctx, tx, x, now, Actor{Role: RoleExpert, Person: expert}, EventSampleDownloaded,
			SampleDownloadedEvent{Ref: x.Ref, SampleID: id, Name: smp.Name, SHA256: smp.SHA256, Expert: expert,
				Address: address, Link: linkID(hash)}, false); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE case_download_links SET used_at = $2 WHERE token_hash = $1`, hash, now); err != nil {
			return fmt.Errorf("mark download link used: %w", err)
		}
		changed = x
		out = &SampleDownload{Sample: smp.Sample, Expert: expert, ExpiresAt: exp.UTC()}
		return s.saveRecord(ctx, tx, x, now)
	})
	if err != nil {
		return nil, err
	}
	changed.runCommitted()
	s.log.InfoContext(ctx, "sample downloaded", "ref", smp.Ref, "sample", smp.ID, "expert", out.Expert.UserID)
	out.Body = &chunkReader{ctx: ctx, s: s, smp: smp, sum: sha256.New()}
	return out, nil
}

// chunkReader decrypts a sample chunk by chunk, one query per chunk, and
// checks the whole against the recorded size and SHA-256.
type chunkReader struct {
	ctx    context.Context
	s      *Service
	smp    storedSample
	seq    int
	buf    []byte
	n      int64
	sum    hash.Hash
	err    error
	closed bool
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.seq == r.smp.chunkCount {
			r.err = io.EOF
			if got := hex.EncodeToString(r.sum.Sum(nil)); r.n != r.smp.Size || got != r.smp.SHA256 {
				r.err = fmt.Errorf("sample %d of %s: the decrypted bytes (%d, SHA-256 %s) are not the file stored (%d, SHA-256 %s)",
					r.smp.ID, r.smp.Ref, r.n, got, r.smp.Size, r.smp.SHA256)
			}
			continue
		}
		var sealed []byte
		err := r.s.pool.QueryRow(r.ctx, `SELECT data FROM case_sample_chunks WHERE sample_id = $1 AND seq = $2`, r.smp.ID, r.seq).Scan(&sealed)
		if errors.Is(err, pgx.ErrNoRows) {
			r.err = fmt.Errorf("sample %d of %s: chunk %d is missing (deleted meanwhile?)", r.smp.ID, r.smp.Ref, r.seq)
			continue
		}
		if err != nil {
			r.err = fmt.Errorf("read chunk %d of sample %d: %w", r.seq, r.smp.ID, err)
			continue
		}
		plain, err := r.s.cfg.Key.Open(secrets.PurposeSampleEncryption, sealed, chunkAAD(r.smp.ID, r.seq, r.seq == r.smp.chunkCount-1))
		if err != nil {
			r.err = fmt.Errorf("sample %d of %s: chunk %d does not decrypt (changed, moved or truncated): %w", r.smp.ID, r.smp.Ref, r.seq, err)
			continue
		}
		r.sum.Write(plain)
		r.n += int64(len(plain))
		r.buf = plain
		r.seq++
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close ends the reader; further reads fail.
func (r *chunkReader) Close() error {
	if !r.closed {
		r.closed = true
		r.buf = nil
		if r.err == nil || r.err == io.EOF {
			r.err = errors.New("sample reader closed")
		}
	}
	return nil
}
