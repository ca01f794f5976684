package casework

import (
	"context"
	"crypto/md5" //nolint:gosec // MD5 is one of the hashes analysts look samples up by, not a protection.
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Upload is a file sample to store: through an upload link (Token), or
// posted in a case thread (Source thread, Ref, Actor, Chat, FileID).
type Upload struct {
	// Token is the upload link's token. Set for uploads; the link names the
	// case and is used up by a stored sample.
	Token string
	// Source is SourceUpload (the default with a Token) or SourceThread.
	Source SampleSource
	// Ref names the case of a thread file.
	Ref string
	// Actor is who posted a thread file: a member of the case's org (on
	// the requester side) or an expert (on the expert side). Another org's
	// member gets ErrNotFound.
	Actor Actor
	// Chat is the chat message a thread file was posted in, and FileID the
	// platform's id of the file (Slack F…, Discord attachment id): a second
	// call with the same FileID stores nothing and returns the first sample
	// with Repeated set (a redelivered event).
	Chat   ChatRef
	FileID string
	// Name is the file name as sent (untrusted: cleaned before it is stored).
	Name string
	// Body streams the file. It is read to its end; a read error (an
	// interrupted upload) stores nothing.
	Body io.Reader
	// Address is the uploader's network address (uploads), for the record.
	Address string
}

func (up *Upload) normalize() error {
	if up.Source == "" {
		up.Source = SourceUpload
		if up.Token == "" {
			up.Source = SourceThread
		}
	}
	if up.Body == nil {
		return fmt.Errorf("store sample: the body is missing: %w", ErrInvalid)
	}
	switch up.Source {
	case SourceUpload:
		if up.Ref != "" || !up.Actor.Person.IsZero() || up.FileID != "" {
			return fmt.Errorf("store sample: an upload names its case by its link's token only: %w", ErrInvalid)
		}
	case SourceThread:
		if up.Token != "" {
			return fmt.Errorf("store sample: a thread file carries no upload token: %w", ErrInvalid)
		}
		if up.Ref == "" {
			return fmt.Errorf("store sample: a thread file needs its case reference: %w", ErrInvalid)
		}
		if up.FileID == "" || up.Chat.Platform == "" {
			return fmt.Errorf("store sample: a thread file needs its chat platform and file id: %w", ErrInvalid)
		}
		if err := up.Actor.validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("store sample: source %q is not upload or thread: %w", up.Source, ErrInvalid)
	}
	if len(up.Address) > 200 {
		up.Address = up.Address[:200]
	}
	up.Name = cleanName(up.Name)
	return nil
}

// side is whose side the sample comes from.
func (up *Upload) side() Side {
	if up.Source == SourceThread && isExpertSide(up.Actor.Role) {
		return SideExpert
	}
	return SideRequester
}

// StoreSample streams a file sample into the case named by the upload
// link's token (or, for a thread file, by Ref). It hashes the bytes while
// reading, refuses more than Config.SampleMaxBytes (*TooLargeError), an
// empty file (ErrEmptySample) and a body that breaks off (*ReadError), and
// otherwise writes, in one transaction: the encrypted chunks, the sample
// row, the timeline entry (size, hashes, uploader, address), the outbox
// event EventSampleStored announcing it to both sides (with MatchText when
// the case is about a file), the link marked used, and, when the case
// waited on the requester (file_sample_needed or more_info_needed) and the
// sample came from the requester's side, the status change back to
// in_progress, which restarts the SLA clock. A refused or failed call
// stores nothing. A used, expired or unknown link is a *LinkError; a case
// closed or withdrawn since is refused too.
//
//	smp, err := svc.StoreSample(ctx, casework.Upload{Token: token, Name: part.FileName(), Body: part, Address: ip})
func (s *Service) StoreSample(ctx context.Context, up Upload) (*Sample, error) {
	smp, err := s.storeSample(ctx, up)
	if err != nil {
		s.smp.refusal(err)
		s.countRefusal(err)
		return nil, err
	}
	return smp, nil
}

func (s *Service) storeSample(ctx context.Context, up Upload) (*Sample, error) {
	if err := up.normalize(); err != nil {
		return nil, err
	}
	var hash []byte
	var number int64
	if up.Source == SourceUpload {
		var ok bool
		if hash, ok = tokenHash(up.Token); !ok {
			return nil, &LinkError{Problem: LinkUnknown}
		}
	} else {
		var err error
		if number, err = ParseRef(up.Ref); err != nil {
			return nil, err
		}
	}
	// First a slot of the case's org, then one of the Service: a
	// customer whose uploads stall holds at most its own share.
	org, err := s.sampleOrg(ctx, up.Source, hash, number)
	if err != nil {
		return nil, err
	}
	own := s.smp.orgSlot(org)
	select {
	case own <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("store sample: wait for a free upload slot: %w", ctx.Err())
	}
	defer func() { <-own }()
	select {
	case s.smp.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("store sample: wait for a free upload slot: %w", ctx.Err())
	}
	defer func() { <-s.smp.slots }()

	var out *Sample
	var changed *row
	err = s.inTx(ctx, "store sample", func(tx pgx.Tx) error {
		actor := up.Actor
		link := ""
		if up.Source == SourceUpload {
			var err error
			if number, err = s.holdUploadLink(ctx, tx, hash); err != nil {
				return err
			}
			link = linkID(hash)
		} else {
			// Only who may see the case may add to it; the rest get ErrNotFound.
			if _, err := s.load(ctx, tx, actor.Viewer(), number, false); err != nil {
				return err
			}
			prev, err := s.sampleByFile(ctx, tx, number, up.Chat.Platform, up.FileID)
			if err != nil || prev != nil {
				out = prev
				return err
			}
		}
		x, err := s.load(ctx, tx, AllOrgs(), number, false)
		if err != nil {
			return err
		}
		if err := refuseClosed(x, up, actor); err != nil {
			return err
		}
		if err := s.withinCaseBudget(ctx, tx, number, 0); err != nil {
			return err // full already: nothing to stream
		}
		if up.Source == SourceUpload {
			actor = Actor{Role: RoleRequester, Org: x.Org,
				Person: Person{Platform: "web", UserID: "upload-link:" + link, DisplayName: "upload link " + link}}
		}

		// Stream the bytes in, sealed, before taking the case's row lock:
		// a slow upload must not hold up the case's conversation.
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO case_samples (case_number, source, side, name, size, md5, sha1, sha256,
 chunk_size, chunk_count, uploader_platform, uploader_workspace, uploader_user, uploader_name, uploader_address,
 chat_platform, chat_workspace, chat_channel, chat_message, chat_file, created_at)
 VALUES ($1, $2, $3, $4, 0, '', '', '', $5, 0, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`,
			number, up.Source, up.side(), up.Name, s.smp.chunkSize, actor.Platform, actor.Workspace, actor.UserID,
			actor.DisplayName, up.Address, up.Chat.Platform, up.Chat.Workspace, up.Chat.Channel, up.Chat.Message,
			up.FileID, s.cfg.now()).Scan(&id); err != nil {
			if isUniqueViolation(err) {
				// The same thread file, stored by a concurrent delivery.
				return &TransitionError{Ref: FormatRef(number), From: x.Status, Role: actor.Role,
					Reason: fmt.Sprintf("file %s of %s is being stored already", up.FileID, FormatRef(number))}
			}
			return fmt.Errorf("store sample of %s: %w", FormatRef(number), err)
		}
		st, err := s.writeChunks(ctx, tx, id, up.Body)
		if err != nil {
			return err
		}

		x, now, err := s.lockCase(ctx, tx, AllOrgs(), number)
		if err != nil {
			return err
		}
		if err := refuseClosed(x, up, actor); err != nil {
			return err // closed while the file streamed in
		}
		// Under the case's lock: concurrent uploads count each other.
		if err := s.withinCaseBudget(ctx, tx, number, st.size); err != nil {
			return err
		}
		match, matchText := matchSubject(x.Subject, st.md5, st.sha1, st.sha256)
		if _, err := tx.Exec(ctx, `UPDATE case_samples SET size = $2, md5 = $3, sha1 = $4, sha256 = $5, chunk_count = $6,
 created_at = $7 WHERE id = $1`, id, st.size, st.md5, st.sha1, st.sha256, st.chunks, now); err != nil {
			return fmt.Errorf("store sample of %s: %w", x.Ref, err)
		}
		if up.Source == SourceUpload {
			if _, err := tx.Exec(ctx, `UPDATE case_upload_links SET used_at = $2, sample_id = $3 WHERE token_hash = $1`,
				hash, now, id); err != nil {
				return fmt.Errorf("use upload link of %s: %w", x.Ref, err)
			}
		}
		out = &Sample{ID: id, Ref: x.Ref, Source: up.Source, Side: up.side(), Name: up.Name, Size: st.size,
			MD5: st.md5, SHA1: st.sha1, SHA256: st.sha256, Uploader: actor.Person, Address: up.Address,
			Chat: up.Chat, FileID: up.FileID, Match: match, MatchText: matchText, CreatedAt: now}
		ev := SampleStoredEvent{Ref: x.Ref, SampleID: id, Source: up.Source, Side: out.Side, Name: out.Name, Size: out.Size,
			MD5: out.MD5, SHA1: out.SHA1, SHA256: out.SHA256, Uploader: actor.Person, Address: up.Address, Link: link,
			Match: match, MatchText: matchText, FileID: up.FileID}
		if !up.Chat.IsZero() {
			c := up.Chat
			ev.Chat = &c
		}
		resume := out.Side == SideRequester && x.Status.WaitingOnRequester()
		ev.Resumed = resume
		if err := s.record(ctx, tx, x, now, actor, EventSampleStored, ev, true); err != nil {
			return err
		}
		if resume {
			// The sample is the requester's answer: back to work, clock running.
			by := actor
			if !Allowed(x.Status, StatusInProgress, by.Role) {
				by = System()
			}
			if err := s.transition(ctx, tx, x, TransitionRequest{Ref: x.Ref, To: StatusInProgress, Actor: by,
				Note: "the requester sent a file sample"}, now, true); err != nil {
				return err
			}
		}
		if err := s.save(ctx, tx, x, now); err != nil {
			return err
		}
		s.flags(x, now)
		changed = x
		return nil
	})
	if err != nil {
		return nil, err
	}
	if changed != nil {
		changed.runCommitted()
		s.smp.stored.WithLabelValues(string(out.Source)).Inc()
		s.smp.bytes.Add(float64(out.Size))
		s.log.InfoContext(ctx, "sample stored", "ref", out.Ref, "sample", out.ID, "source", out.Source,
			"size", out.Size, "sha256", out.SHA256)
	}
	return out, nil
}

// withinCaseBudget refuses (*TooLargeError) adding size bytes to the
// samples case number keeps (Config.SampleCaseMaxBytes); the sample being
// stored, its size not yet written, counts as 0.
func (s *Service) withinCaseBudget(ctx context.Context, tx pgx.Tx, number, size int64) error {
	var stored int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(sum(size), 0) FROM case_samples WHERE case_number = $1 AND deleted_at IS NULL`,
		number).Scan(&stored); err != nil {
		return fmt.Errorf("count the samples of %s: %w", FormatRef(number), err)
	}
	if limit := s.cfg.SampleCaseMaxBytes; stored+size > limit || (size == 0 && stored >= limit) {
		return &TooLargeError{Limit: limit, Case: true, Stored: stored}
	}
	return nil
}

// refuseClosed refuses a sample for a closed or withdrawn case.
func refuseClosed(x *row, up Upload, actor Actor) error {
	if x.Status != StatusClosed && x.Status != StatusWithdrawn {
		return nil
	}
	if up.Source == SourceUpload {
		return &LinkError{Problem: LinkCaseClosed, At: derefTime(x.ClosedAt), Status: x.Status}
	}
	reason := fmt.Sprintf("%s is %s; reopen it to send a sample", x.Ref, x.Status.Label())
	if x.Status == StatusWithdrawn {
		// Nothing reopens a withdrawn case.
		reason = fmt.Sprintf("%s was withdrawn; to have a file looked at, ask in a new case", x.Ref)
	}
	return &TransitionError{Ref: x.Ref, From: x.Status, Role: actor.Role, Reason: reason}
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// holdUploadLink locks the upload link's row for the rest of tx and returns
// its case. A second upload through the same link while one streams is
// refused at once (LinkBusy) rather than made to wait.
func (s *Service) holdUploadLink(ctx context.Context, tx pgx.Tx, hash []byte) (int64, error) {
	var number int64
	var exp time.Time
	var used *time.Time
	err := tx.QueryRow(ctx, `SELECT case_number, expires_at, used_at FROM case_upload_links WHERE token_hash = $1 FOR UPDATE NOWAIT`,
		hash).Scan(&number, &exp, &used)
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, &LinkError{Problem: LinkUnknown}
	case errors.As(err, &pe) && pe.Code == "55P03": // lock_not_available
		return 0, &LinkError{Problem: LinkBusy}
	case err != nil:
		return 0, fmt.Errorf("look up upload link: %w", err)
	}
	return number, s.checkUploadLink(exp, used)
}

// sampleOrg is the org of the case a store is for, read without a
// transaction to pick its slots; "" when the link or case is unknown (the
// store's transaction then refuses it with the right error).
func (s *Service) sampleOrg(ctx context.Context, source SampleSource, hash []byte, number int64) (string, error) {
	var org string
	var err error
	if source == SourceUpload {
		err = s.pool.QueryRow(ctx, `SELECT c.org FROM case_upload_links l JOIN cases c ON c.number = l.case_number WHERE l.token_hash = $1`,
			hash).Scan(&org)
	} else {
		err = s.pool.QueryRow(ctx, `SELECT org FROM cases WHERE number = $1`, number).Scan(&org)
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("store sample: look up its case: %w", err)
	}
	return org, nil
}

// sampleByFile returns the thread file stored before under the platform's
// file id, or nil.
func (s *Service) sampleByFile(ctx context.Context, q pgxQuerier, number int64, platform, fileID string) (*Sample, error) {
	rows, err := q.Query(ctx, sampleSelect+` WHERE s.case_number = $1 AND s.chat_platform = $2 AND s.chat_file = $3`,
		number, platform, fileID)
	if err != nil {
		return nil, fmt.Errorf("look up thread file %s of %s: %w", fileID, FormatRef(number), err)
	}
	smps, err := collectSamples(rows)
	if err != nil || len(smps) == 0 {
		return nil, err
	}
	smps[0].Repeated = true
	return &smps[0], nil
}

// stream is what writeChunks learned of the bytes.
type stream struct {
	size              int64
	chunks            int
	md5, sha1, sha256 string
}

// chunkAAD is the associated data of a sample's chunk: the sample, the
// chunk's index and whether it is the last, so that a chunk moved to
// another sample or position, or a dropped tail, does not decrypt.
func chunkAAD(id int64, seq int, final bool) []byte {
	b := make([]byte, 0, 40)
	b = append(b, "threatdesk/sample-chunk/v1\x00"...)
	b = binary.BigEndian.AppendUint64(b, uint64(id))
	b = binary.BigEndian.AppendUint32(b, uint32(seq))
	if final {
		return append(b, 1)
	}
	return append(b, 0)
}

// reader reads a sample's body in chunks, counting and hashing what it
// reads and stopping past the limit.
type reader struct {
	r     io.Reader
	limit int64
	n     int64
	h     []hash.Hash
}

// fill reads into p until it is full or the body ends (eof).
func (r *reader) fill(p []byte) (n int, eof bool, err error) {
	for n < len(p) {
		m, err := r.r.Read(p[n:])
		n += m
		r.n += int64(m)
		if r.n > r.limit {
			return n, false, &TooLargeError{Limit: r.limit}
		}
		if errors.Is(err, io.EOF) {
			eof = true
			break
		}
		if err != nil {
			return n, false, &ReadError{Err: err}
		}
	}
	for _, h := range r.h {
		h.Write(p[:n])
	}
	return n, eof, nil
}

// writeChunks streams body into sealed chunks of sample id, one chunk read
// ahead so the last one is known as such when it is sealed.
func (s *Service) writeChunks(ctx context.Context, tx pgx.Tx, id int64, body io.Reader) (stream, error) {
	hm, h1, h256 := md5.New(), sha1.New(), sha256.New() //nolint:gosec // lookup hashes
	rd := &reader{r: body, limit: s.cfg.SampleMaxBytes, h: []hash.Hash{hm, h1, h256}}
	cur, next := make([]byte, s.smp.chunkSize), make([]byte, s.smp.chunkSize)
	n, eof, err := rd.fill(cur)
	if err != nil {
		return stream{}, err
	}
	if n == 0 {
		return stream{}, fmt.Errorf("%w (%w)", ErrEmptySample, ErrInvalid)
	}
	seq := 0
	put := func(p []byte, final bool) error {
		sealed, err := s.cfg.Key.Seal(secrets.PurposeSampleEncryption, p, chunkAAD(id, seq, final))
		if err != nil {
			return fmt.Errorf("seal chunk %d of sample %d: %w", seq, id, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO case_sample_chunks (sample_id, seq, data) VALUES ($1, $2, $3)`, id, seq, sealed); err != nil {
			return fmt.Errorf("store chunk %d of sample %d: %w", seq, id, err)
		}
		seq++
		return nil
	}
	for {
		if eof {
			if err := put(cur[:n], true); err != nil {
				return stream{}, err
			}
			break
		}
		m, eof2, err := rd.fill(next)
		if err != nil {
			return stream{}, err
		}
		if m == 0 && eof2 {
			if err := put(cur[:n], true); err != nil {
				return stream{}, err
			}
			break
		}
		if err := put(cur[:n], false); err != nil {
			return stream{}, err
		}
		cur, next = next, cur
		n, eof = m, eof2
	}
	return stream{size: rd.n, chunks: seq, md5: hex.EncodeToString(hm.Sum(nil)),
		sha1: hex.EncodeToString(h1.Sum(nil)), sha256: hex.EncodeToString(h256.Sum(nil))}, nil
}
