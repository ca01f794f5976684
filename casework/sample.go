package casework

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// File samples: the upload drop box and its chain of custody. The package
// doc (doc.go, "File samples") says how the chat side calls it.

// Sample settings and limits.
const (
	// DefaultSampleMaxBytes is samples.max_bytes by default: 100 MiB.
	DefaultSampleMaxBytes int64 = 100 << 20
	// MaxSampleMaxBytes bounds samples.max_bytes (1 GiB): samples live in
	// PostgreSQL, and the ZIP download stays clear of ZIP64.
	MaxSampleMaxBytes int64 = 1 << 30
	// DefaultSampleCaseMaxBytes is samples.case_max_bytes by default: the
	// samples of one case take at most 1 GiB in all.
	DefaultSampleCaseMaxBytes int64 = 1 << 30
	// MaxSampleCaseMaxBytes bounds samples.case_max_bytes (100 GiB).
	MaxSampleCaseMaxBytes int64 = 100 << 30
	// DefaultSampleRetention is cases.sample_retention by default: samples
	// are deleted 30 days after their case closes.
	DefaultSampleRetention = 30 * 24 * time.Hour
	// UploadLinkTTL is how long an upload link is valid.
	UploadLinkTTL = 72 * time.Hour
	// DownloadLinkTTL is how long a download link is valid.
	DownloadLinkTTL = 10 * time.Minute
	// SampleChunkSize is the plaintext size of each encrypted chunk.
	SampleChunkSize = 1 << 20
	// MaxSampleNameRunes bounds a sample's file name.
	MaxSampleNameRunes = 200
	// MaxConcurrentSampleStores is how many StoreSample calls of one Service
	// stream at once; more wait their turn. Each holds a database
	// connection (its transaction) while the file streams in.
	MaxConcurrentSampleStores = 4
	// MaxConcurrentSampleStoresPerOrg is how many of those one org's cases
	// may hold: one customer's stalled uploads never block another's.
	MaxConcurrentSampleStoresPerOrg = 2
	// SampleSweepJobName names the retention sweep's gocron job and lock.
	SampleSweepJobName = "casework-sample-retention"
	// sampleSweepEvery is how often Start runs SweepSamples.
	sampleSweepEvery = 15 * time.Minute
)

// Sample event kinds. Only EventSampleStored goes to the outbox (the bot
// announces the sample to both sides); the others are timeline entries,
// the chain of custody.
const (
	// EventUploadLinkIssued: an upload link was issued. Payload UploadLinkIssuedEvent. Timeline only.
	EventUploadLinkIssued = "case.upload_link_issued"
	// EventSampleStored: a sample arrived. Payload SampleStoredEvent.
	EventSampleStored = "case.sample_stored"
	// EventDownloadLinkIssued: an expert asked for a download link. Payload DownloadLinkIssuedEvent. Timeline only.
	EventDownloadLinkIssued = "case.sample_download_link_issued"
	// EventSampleDownloaded: an expert downloaded a sample. Payload SampleDownloadedEvent. Timeline only.
	EventSampleDownloaded = "case.sample_downloaded"
	// EventSampleDeleted: a sample's bytes were deleted. Payload SampleDeletedEvent. Timeline only.
	EventSampleDeleted = "case.sample_deleted"
)

// SampleSource is how a sample arrived.
type SampleSource string

// Sample sources.
const (
	// SourceUpload: through an upload link (the web page or curl).
	SourceUpload SampleSource = "upload"
	// SourceThread: a file posted in a case thread, fetched by the bot.
	SourceThread SampleSource = "thread"
)

// SubjectMatch says whether a sample is the file a case is about.
type SubjectMatch string

// Subject matches.
const (
	// MatchNone: the case is not about a file.
	MatchNone SubjectMatch = ""
	// MatchYes: one of the sample's hashes is the case's file hash.
	MatchYes SubjectMatch = "match"
	// MatchNo: the case is about another file.
	MatchNo SubjectMatch = "mismatch"
)

// Sample is a file sample of a case: what is known of it without
// decrypting anything.
type Sample struct {
	// ID identifies the sample (the Download sample button carries it);
	// Ref is its case.
	ID  int64
	Ref string
	// Source is upload or thread; Side whose side sent it.
	Source SampleSource
	Side   Side
	// Name is the file name as sent (untrusted, cleaned of paths and
	// control characters); Size its length in bytes.
	Name string
	Size int64
	// MD5, SHA1 and SHA256 are lower-case hex digests of the file.
	MD5    string
	SHA1   string
	SHA256 string
	// Uploader is who sent it: the chat user for a thread file; for an
	// upload, the link ("upload link 3f2a…"). Address is the uploader's
	// network address (uploads only).
	Uploader Person
	Address  string
	// Chat is the chat message a thread file was posted in; FileID the
	// platform's id of the file.
	Chat   ChatRef
	FileID string
	// Match compares the sample with the case's file subject; MatchText
	// says it in words for the desk ("matches the file the case is about").
	Match     SubjectMatch
	MatchText string
	// CreatedAt is when it was stored; DeletedAt when the retention sweep
	// deleted its bytes (nil while they are kept).
	CreatedAt time.Time
	DeletedAt *time.Time
	// Repeated is set by StoreSample when the thread file was stored
	// before (a redelivered event): nothing new was written.
	Repeated bool
}

// UploadLinkIssuedEvent is the payload of EventUploadLinkIssued.
type UploadLinkIssuedEvent struct {
	Ref string `json:"ref"`
	// Link identifies the link on the timeline (a prefix of its token's
	// SHA-256), never the token.
	Link      string    `json:"link"`
	ExpiresAt time.Time `json:"expires_at"`
	By        Actor     `json:"by"`
}

// SampleStoredEvent is the payload of EventSampleStored: announce the sample
// to both sides by name, size and hash. The file itself never crosses.
type SampleStoredEvent struct {
	Ref      string       `json:"ref"`
	SampleID int64        `json:"sample_id"`
	Source   SampleSource `json:"source"`
	Side     Side         `json:"side"`
	Name     string       `json:"name"`
	Size     int64        `json:"size"`
	MD5      string       `json:"md5"`
	SHA1     string       `json:"sha1"`
	SHA256   string       `json:"sha256"`
	// Uploader is who sent it (for an upload: the link); Address the
	// uploader's network address (uploads only; for the desk and the record).
	Uploader Person `json:"uploader"`
	Address  string `json:"address,omitempty"`
	// Link is the upload link's id (uploads only).
	Link string `json:"link,omitempty"`
	// Match and MatchText compare the sample with the case's file subject
	// (empty when the case is not about a file).
	Match     SubjectMatch `json:"match,omitempty"`
	MatchText string       `json:"match_text,omitempty"`
	// Source message of a thread file: announce in the other thread, and
	// only confirm in this one.
	Chat   *ChatRef `json:"chat,omitempty"`
	FileID string   `json:"file_id,omitempty"`
	// Resumed is true when the sample ended a wait on the requester (the
	// case is back in progress; an EventStatusChanged follows).
	Resumed bool `json:"resumed,omitempty"`
}

// DownloadLinkIssuedEvent is the payload of EventDownloadLinkIssued.
type DownloadLinkIssuedEvent struct {
	Ref       string    `json:"ref"`
	SampleID  int64     `json:"sample_id"`
	Name      string    `json:"name"`
	SHA256    string    `json:"sha256"`
	Link      string    `json:"link"`
	Expert    Person    `json:"expert"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SampleDownloadedEvent is the payload of EventSampleDownloaded.
type SampleDownloadedEvent struct {
	Ref      string `json:"ref"`
	SampleID int64  `json:"sample_id"`
	Name     string `json:"name"`
	SHA256   string `json:"sha256"`
	// Expert is who the link was issued to; Address where the download came from.
	Expert  Person `json:"expert"`
	Address string `json:"address,omitempty"`
	Link    string `json:"link"`
}

// SampleDeletedEvent is the payload of EventSampleDeleted.
type SampleDeletedEvent struct {
	Ref      string `json:"ref"`
	SampleID int64  `json:"sample_id"`
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	// Reason says why ("retention: 30 days after the case closed").
	Reason string `json:"reason"`
}

// LinkProblem says why a link was refused.
type LinkProblem string

// Link problems.
const (
	// LinkUnknown: no such link. Also a token of the other kind, of another
	// deployment, or forgotten long after it expired: nothing is said of
	// any case.
	LinkUnknown LinkProblem = "unknown"
	// LinkUsed: the upload link already took a file.
	LinkUsed LinkProblem = "used"
	// LinkDownloaded: the download link already served the sample.
	LinkDownloaded LinkProblem = "downloaded"
	// LinkExpired: the link is past its expiry.
	LinkExpired LinkProblem = "expired"
	// LinkBusy: another upload through the same link is streaming now.
	LinkBusy LinkProblem = "busy"
	// LinkCaseClosed: the case is closed or withdrawn.
	LinkCaseClosed LinkProblem = "case_closed"
	// LinkSampleDeleted: the sample's bytes were deleted (retention).
	LinkSampleDeleted LinkProblem = "sample_deleted"
	// LinkNotExpert: the download link's expert is no threat expert any
	// more (OpenSample's stillExpert).
	LinkNotExpert LinkProblem = "not_expert"
)

// LinkError refuses an upload or download link. Error is one sentence that
// names no case (the web page adds what to do).
type LinkError struct {
	Problem LinkProblem
	// At is when the link was used, expired, or the sample was deleted.
	At time.Time
	// Status is the case's, for LinkCaseClosed: closed or withdrawn.
	Status Status
}

// Error says why the link was refused.
func (e *LinkError) Error() string {
	at := e.At.UTC().Format("2 January 2006 15:04 MST")
	switch e.Problem {
	case LinkUsed:
		return "this upload link was already used, on " + at + "; each link takes one file"
	case LinkDownloaded:
		return "this download link was already used, on " + at + "; each link works once"
	case LinkExpired:
		return "this link expired on " + at
	case LinkBusy:
		return "another upload through this link is in progress"
	case LinkCaseClosed:
		if e.Status == StatusWithdrawn {
			return "the case of this link was withdrawn"
		}
		return "the case of this link is closed"
	case LinkSampleDeleted:
		return "this sample was deleted on " + at + " (retention after the case closed)"
	case LinkNotExpert:
		return "the expert this download link was issued to is no threat expert any more"
	}
	return "this link is not valid"
}

// TooLargeError refuses a sample over Config.SampleMaxBytes, or one that
// would take the case's samples past Config.SampleCaseMaxBytes; nothing
// was stored.
type TooLargeError struct {
	// Limit is the maximum size in bytes.
	Limit int64
	// Case: Limit is the case's, of which Stored bytes are taken.
	Case   bool
	Stored int64
}

// Error says what the limit is.
func (e *TooLargeError) Error() string {
	if e.Case {
		return fmt.Sprintf("the samples of this case would take more than its limit of %s in all (%s stored already); nothing was stored. "+
			"Ask the experts in the case's thread which files they still need", FormatBytes(e.Limit), FormatBytes(e.Stored))
	}
	return fmt.Sprintf("the file is larger than the limit of %s; nothing was stored", FormatBytes(e.Limit))
}

// ErrEmptySample refuses an empty file (errors.Is also matches ErrInvalid).
var ErrEmptySample = errors.New("the file is empty; nothing was stored")

// ReadError is a failure reading the sample's bytes (an interrupted upload,
// a body over the HTTP cap): nothing was stored. Err is the reader's error.
type ReadError struct{ Err error }

// Error says the upload broke off.
func (e *ReadError) Error() string {
	return "the file could not be read to its end (" + e.Err.Error() + "); nothing was stored"
}

// Unwrap returns the reader's error.
func (e *ReadError) Unwrap() error { return e.Err }

// FormatBytes is a size for people: "100 MiB", "1.5 KiB", "12 bytes".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		if n == 1 {
			return "1 byte"
		}
		return fmt.Sprintf("%d bytes", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n)/unit, 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + units[i]
}

// sampleState is the Service's sample machinery: metrics, the slots that
// bound concurrent stores, and the chunk size (tests shrink it).
type sampleState struct {
	slots     chan struct{}
	orgMu     sync.Mutex
	orgSlots  map[string]chan struct{} // per org, MaxConcurrentSampleStoresPerOrg each
	chunkSize int

	stored     *prometheus.CounterVec
	bytes      prometheus.Counter
	refused    *prometheus.CounterVec
	downloads  prometheus.Counter
	deleted    prometheus.Counter
	linkIssued *prometheus.CounterVec
}

func newSampleState(reg prometheus.Registerer) (*sampleState, error) {
	st := &sampleState{
		slots:     make(chan struct{}, MaxConcurrentSampleStores),
		orgSlots:  map[string]chan struct{}{},
		chunkSize: SampleChunkSize,
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "samples_stored_total",
			Help: "File samples stored, by source (upload, thread).",
		}, []string{"source"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "sample_bytes_stored_total",
			Help: "Plaintext bytes of the file samples stored.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "samples_refused_total",
			Help: "Sample uploads and downloads refused, by reason (too_large, empty, read, link_unknown, link_used, link_expired, ...).",
		}, []string{"reason"}),
		downloads: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "sample_downloads_total",
			Help: "Sample downloads by experts.",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "samples_deleted_total",
			Help: "Samples whose bytes the retention sweep deleted.",
		}),
		linkIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "threatdesk", Subsystem: "casework", Name: "sample_links_issued_total",
			Help: "Sample links issued, by kind (upload, download).",
		}, []string{"kind"}),
	}
	if reg == nil {
		return st, nil
	}
	var err error
	for _, c := range []**prometheus.CounterVec{&st.stored, &st.refused, &st.linkIssued} {
		if *c, err = registerOrReuse(reg, *c); err != nil {
			return nil, fmt.Errorf("casework: register sample metrics: %w", err)
		}
	}
	for _, c := range []*prometheus.Counter{&st.bytes, &st.downloads, &st.deleted} {
		if *c, err = registerOrReuse(reg, *c); err != nil {
			return nil, fmt.Errorf("casework: register sample metrics: %w", err)
		}
	}
	return st, nil
}

// refusal counts a refused upload or download by reason.
func (st *sampleState) refusal(err error) {
	var le *LinkError
	var tl *TooLargeError
	var re *ReadError
	reason := ""
	switch {
	case errors.As(err, &le):
		reason = "link_" + string(le.Problem)
	case errors.As(err, &tl):
		reason = "too_large"
	case errors.Is(err, ErrEmptySample):
		reason = "empty"
	case errors.As(err, &re):
		reason = "read"
	case errors.Is(err, ErrNotFound):
		reason = "not_found"
	case errors.Is(err, ErrInvalid):
		reason = "invalid"
	default:
		return
	}
	st.refused.WithLabelValues(reason).Inc()
}

// withSampleDefaults fills the sample settings of c.
func (c Config) withSampleDefaults() Config {
	if c.SampleMaxBytes == 0 {
		c.SampleMaxBytes = DefaultSampleMaxBytes
	}
	if c.SampleCaseMaxBytes == 0 {
		c.SampleCaseMaxBytes = max(DefaultSampleCaseMaxBytes, c.SampleMaxBytes)
	}
	if c.SampleRetention == 0 {
		c.SampleRetention = DefaultSampleRetention
	}
	return c
}

// validateSamples checks the sample settings of c.
func (c Config) validateSamples() []error {
	var errs []error
	if c.SampleMaxBytes < 1 || c.SampleMaxBytes > MaxSampleMaxBytes {
		errs = append(errs, fmt.Errorf("samples.max_bytes %d must be between 1 and %d (1 GiB; samples are kept in PostgreSQL); the default is %d (100 MiB)",
			c.SampleMaxBytes, MaxSampleMaxBytes, DefaultSampleMaxBytes))
	}
	if c.SampleCaseMaxBytes < c.SampleMaxBytes || c.SampleCaseMaxBytes > MaxSampleCaseMaxBytes {
		errs = append(errs, fmt.Errorf("samples.case_max_bytes %d must be between samples.max_bytes (%d) and %d (100 GiB); the default is %d (1 GiB)",
			c.SampleCaseMaxBytes, c.SampleMaxBytes, MaxSampleCaseMaxBytes, DefaultSampleCaseMaxBytes))
	}
	if c.SampleRetention < time.Hour {
		errs = append(errs, fmt.Errorf("cases.sample_retention %s is too short: keep samples at least 1h after their case closes (default 30d)",
			c.SampleRetention))
	}
	return errs
}

// ---- tokens ----

// tokenBytes is the length of a link token's random bytes.
const tokenBytes = 32

// newToken returns a fresh link token and the SHA-256 that is stored.
func newToken() (token string, hash []byte, err error) {
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("make a link token: %w", err)
	}
	sum := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(raw), sum[:], nil
}

// tokenHash is the stored SHA-256 of a token, or false when s is not one.
func tokenHash(s string) ([]byte, bool) {
	if len(s) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return nil, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) != tokenBytes {
		return nil, false
	}
	sum := sha256.Sum256(raw)
	return sum[:], true
}

// linkID names a link on the timeline: the first 6 bytes of its token's
// SHA-256, in hex. It reveals nothing of the token.
func linkID(hash []byte) string { return hex.EncodeToString(hash[:6]) }

// ---- names and hashes ----

// cleanName is a sample's file name made safe to show and to extract: the
// last path element, without control or format characters (bidirectional
// overrides included), at most MaxSampleNameRunes runes; "sample.bin" when
// nothing is left.
func cleanName(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	s = strings.TrimSpace(s)
	s = strings.TrimLeft(s, ".")
	if utf8.RuneCountInString(s) > MaxSampleNameRunes {
		s = string([]rune(s)[:MaxSampleNameRunes])
	}
	if strings.TrimSpace(s) == "" {
		return "sample.bin"
	}
	return s
}

// matchSubject compares a sample's digests with the case's file subject.
func matchSubject(sub Subject, md5, sha1, sha256 string) (SubjectMatch, string) {
	if sub.Kind != SubjectFile {
		return MatchNone, ""
	}
	want := strings.ToLower(strings.TrimSpace(sub.ID))
	for _, got := range []string{md5, sha1, sha256} {
		if want != "" && want == got {
			return MatchYes, "matches the file the case is about"
		}
	}
	return MatchNo, "does not match: SHA-256 " + sha256 + " is not " + sub.ID + ", the file the case is about"
}

// ---- shared steps ----

// lockCase loads a case for update as v sees it, with the time its
// new entries take (never before its last change).
func (s *Service) lockCase(ctx context.Context, tx pgx.Tx, v Viewer, number int64) (*row, time.Time, error) {
	x, err := s.load(ctx, tx, v, number, true)
	if err != nil {
		return nil, time.Time{}, err
	}
	now := s.cfg.now()
	if now.Before(x.UpdatedAt) {
		now = x.UpdatedAt
	}
	return x, now, nil
}

// saveRecord saves a case whose timeline grew by entries that do not
// change the case itself (a link issued, a download, a deletion):
// updated_at stays as it was.
func (s *Service) saveRecord(ctx context.Context, tx pgx.Tx, x *row, now time.Time) error {
	keep := x.UpdatedAt
	if err := s.save(ctx, tx, x, now); err != nil {
		return err
	}
	x.UpdatedAt = keep
	if _, err := tx.Exec(ctx, `UPDATE cases SET updated_at = $2 WHERE number = $1`, x.Number, keep); err != nil {
		return fmt.Errorf("keep updated_at of %s: %w", x.Ref, err)
	}
	return nil
}

// ---- upload links ----

// UploadLink is an issued upload link. Token goes into the URL
// (adapters/web Links.Upload) and is never stored or shown again.
type UploadLink struct {
	// Ref is the case; Link the id the timeline knows the link by.
	Ref  string
	Link string
	// Token is the secret part of the URL.
	Token string
	// ExpiresAt is when the link stops working (UploadLinkTTL after issue).
	ExpiresAt time.Time
	// Repeated is set by IssueUploadLinkOnce when the key had issued this
	// link before: nothing new was issued or recorded.
	Repeated bool
}

// IssueUploadLink issues a one-time upload link for the case named by ref,
// valid for UploadLinkTTL, and records "upload link issued" on its
// timeline. by is who asks: a member of the case's org (another org's
// member gets ErrNotFound), an expert, a manager, or System() for the link
// posted when a case goes to file_sample_needed. The case must be open.
// Each call issues a new link; earlier ones stay valid until used or expired.
//
//	link, err := svc.IssueUploadLink(ctx, "EOD-12", casework.System())
func (s *Service) IssueUploadLink(ctx context.Context, ref string, by Actor) (*UploadLink, error) {
	if err := by.validate(); err != nil {
		return nil, err
	}
	number, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	token, hash, err := newToken()
	if err != nil {
		return nil, err
	}
	var out *UploadLink
	var changed *row
	err = s.inTx(ctx, "issue upload link for "+FormatRef(number), func(tx pgx.Tx) error {
		x, now, err := s.lockCase(ctx, tx, by.Viewer(), number)
		if err != nil {
			return err
		}
		if !x.Status.Open() {
			return &TransitionError{Ref: x.Ref, From: x.Status, Role: by.Role,
				Reason: fmt.Sprintf("%s is %s: samples can be sent while a case is open", x.Ref, x.Status.Label())}
		}
		exp := now.Add(UploadLinkTTL)
		if _, err := tx.Exec(ctx, `INSERT INTO case_upload_links (token_hash, case_number, issued_platform, issued_workspace,
 issued_user, issued_name, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			hash, x.Number, by.Platform, by.Workspace, by.UserID, by.DisplayName, now, exp); err != nil {
			return fmt.Errorf("store upload link of %s: %w", x.Ref, err)
		}
		out = &UploadLink{Ref: x.Ref, Link: linkID(hash), Token: token, ExpiresAt: exp}
		if err := s.record(ctx, tx, x, now, by, EventUploadLinkIssued,
			UploadLinkIssuedEvent{Ref: x.Ref, Link: out.Link, ExpiresAt: exp, By: by}, false); err != nil {
			return err
		}
		changed = x
		return s.saveRecord(ctx, tx, x, now)
	})
	if err != nil {
		s.countRefusal(err)
		return nil, err
	}
	changed.runCommitted()
	s.smp.linkIssued.WithLabelValues("upload").Inc()
	return out, nil
}

// UploadLinkInfo is what the upload page shows: the case and the limit.
type UploadLinkInfo struct {
	// Ref and Question are the case's (the question is untrusted text).
	Ref      string
	Question string
	// Subject is what the case is about.
	Subject Subject
	// ExpiresAt is when the link stops working.
	ExpiresAt time.Time
	// MaxBytes is the size limit (Config.SampleMaxBytes).
	MaxBytes int64
}

// UploadLinkInfo returns what the upload page shows for a token, without
// using the link. A used, expired or unknown token is a *LinkError, as is a
// link whose case was closed or withdrawn.
//
//	info, err := svc.UploadLinkInfo(ctx, token)
func (s *Service) UploadLinkInfo(ctx context.Context, token string) (*UploadLinkInfo, error) {
	hash, ok := tokenHash(token)
	if !ok {
		s.smp.refusal(&LinkError{Problem: LinkUnknown})
		return nil, &LinkError{Problem: LinkUnknown}
	}
	var number int64
	var exp time.Time
	var used *time.Time
	err := s.pool.QueryRow(ctx, `SELECT case_number, expires_at, used_at FROM case_upload_links WHERE token_hash = $1`, hash).
		Scan(&number, &exp, &used)
	if errors.Is(err, pgx.ErrNoRows) {
		s.smp.refusal(&LinkError{Problem: LinkUnknown})
		return nil, &LinkError{Problem: LinkUnknown}
	}
	if err != nil {
		return nil, fmt.Errorf("look up upload link: %w", err)
	}
	if err := s.checkUploadLink(exp, used); err != nil {
		s.smp.refusal(err)
		return nil, err
	}
	x, err := s.load(ctx, s.pool, AllOrgs(), number, false)
	if err != nil {
		return nil, err
	}
	if x.Status == StatusClosed || x.Status == StatusWithdrawn {
		return nil, &LinkError{Problem: LinkCaseClosed, Status: x.Status}
	}
	return &UploadLinkInfo{Ref: x.Ref, Question: x.Question, Subject: x.Subject, ExpiresAt: exp.UTC(), MaxBytes: s.cfg.SampleMaxBytes}, nil
}

func (s *Service) checkUploadLink(exp time.Time, used *time.Time) error {
	if used != nil {
		return &LinkError{Problem: LinkUsed, At: used.UTC()}
	}
	if !s.cfg.now().Before(exp) {
		return &LinkError{Problem: LinkExpired, At: exp.UTC()}
	}
	return nil
}

// orgSlot returns org's own slots (made on first use; orgs are few).
func (st *sampleState) orgSlot(org string) chan struct{} {
	st.orgMu.Lock()
	defer st.orgMu.Unlock()
	c, ok := st.orgSlots[org]
	if !ok {
		c = make(chan struct{}, MaxConcurrentSampleStoresPerOrg)
		st.orgSlots[org] = c
	}
	return c
}
