package bot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/threatdesk/threatdesk/casework"
)

// File samples, the chat side (README.md, "File samples"). The drop box
// itself is casework's (and adapters/web serves its pages); the bot posts
// the upload link when a case goes to file_sample_needed, answers
// "/experts upload", fetches files posted in case threads into samples,
// announces every sample to both sides by name, size and hash, and hands an
// expert who presses Download sample a short-lived link privately. The file
// itself never crosses to the other side of a case.

// SampleLinks builds the absolute URLs of threatdesk's sample pages from
// THREATDESK_PUBLIC_URL. adapters/web's Links implements it; cmd/threatdesk
// hands it over with UseSamples.
type SampleLinks interface {
	// Upload is the URL of an upload link's page.
	Upload(token string) string
	// Download is the URL of an expert's download link.
	Download(token string) string
	// LocalNote is a sentence to post with a link that only works on the
	// machine threatdesk runs on (THREATDESK_PUBLIC_URL unset), else "".
	LocalNote() string
}

// File is a file posted with a thread reply, as its platform describes it.
type File struct {
	// ID is the platform's id of the file (Slack F…, a Discord attachment
	// id): a redelivered reply stores the file once.
	ID string `json:"id"`
	// Name is the file name as posted (untrusted).
	Name string `json:"name"`
	// Size is the size the platform declares, 0 when it does not say. The
	// bytes fetched must add up to it.
	Size int64 `json:"size,omitempty"`
	// MimeType is the platform's idea of the file's type.
	MimeType string `json:"mime_type,omitempty"`
	// URL is where the adapter fetches the bytes (Slack
	// url_private_download; the Discord attachment URL); empty when the
	// adapter looks it up itself (Slack files.info).
	URL string `json:"url,omitempty"`
}

// FileFetcher is implemented by adapters that can fetch a file posted in a
// thread.
type FileFetcher interface {
	// FetchFile opens the bytes of f, posted with the message at; the
	// caller closes the body. A failure is a *DeliveryError: Permanent
	// when no retry can help (the file was deleted, the app may not read
	// files, the platform offers no download), with Operator saying what
	// to do.
	FetchFile(ctx context.Context, at Ref, f File) (io.ReadCloser, error)
}

// SampleView is what the bot shows of a stored file sample.
type SampleView struct {
	ID   int64
	Ref  string
	Name string // untrusted
	Size int64
	// MD5, SHA1 and SHA256 are lower-case hex digests.
	MD5, SHA1, SHA256 string
	Side              Side
	// Uploader is who sent it (for an upload: the link).
	Uploader string
	// MatchText compares it with the case's file subject, for the desk.
	MatchText string
	// Deleted: the retention sweep deleted its bytes.
	Deleted bool
	// Repeated: a redelivered thread file, stored before; nothing new.
	Repeated bool
}

// UploadLinkRequest asks for a one-time upload link.
type UploadLinkRequest struct {
	Ref string
	// By is who asks, a member of the case's org acting for Org; nil for
	// threatdesk itself (the link posted when a case goes to
	// file_sample_needed).
	By  *User
	Org string
	// Key, when set, issues one link per key: a retried delivery of the
	// same event or command gets the same link again.
	Key string
}

// UploadLink is an issued upload link.
type UploadLink struct {
	// Token is the secret part of its URL (SampleLinks.Upload).
	Token     string
	ExpiresAt time.Time
}

// DownloadLink is an expert's download link.
type DownloadLink struct {
	// Token is the secret part of its URL (SampleLinks.Download).
	Token     string
	ExpiresAt time.Time
	Sample    SampleView
}

// ThreadFile is a file posted in a case thread, streamed from its platform.
type ThreadFile struct {
	Ref string
	// Role is the poster's role on the case (RoleMember acts for Org on
	// the requester's side, RoleExpert on the desk's).
	Role   Role
	Org    string
	Author User
	// Chat is the message the file came with.
	Chat Ref
	File File
	Body io.Reader
}

// FileRefusedError is a file that cannot become a sample whatever the
// retries (larger than the limit, empty). Msg says why, for the thread.
type FileRefusedError struct {
	Msg string
	Err error
}

func (e *FileRefusedError) Error() string { return e.Msg }
func (e *FileRefusedError) Unwrap() error { return e.Err }

// Samples is what the bot needs from casework's file samples.
type Samples interface {
	// UploadLink issues a one-time upload link (another org's member gets
	// ErrNotFound; a closed case a Refusal).
	UploadLink(ctx context.Context, req UploadLinkRequest) (UploadLink, error)
	// StoreThreadFile streams a file posted in a case thread into the case
	// as a sample; a file stored before (same platform file id) comes back
	// with Repeated set.
	StoreThreadFile(ctx context.Context, f ThreadFile) (SampleView, error)
	// DownloadLink issues a short-lived download link to an expert.
	DownloadLink(ctx context.Context, ref string, sampleID int64, expert User) (DownloadLink, error)
	// List returns a case's samples as experts see them, oldest first.
	List(ctx context.Context, ref string) ([]SampleView, error)
	// MaxBytes is the largest sample accepted (samples.max_bytes).
	MaxBytes() int64
}

// UseSamples turns the chat side of file samples on: links for the drop
// box's pages and casework's samples. Call it before Start. Without it,
// files posted in threads are ignored and "/experts upload" says samples
// are not enabled.
func (b *Bot) UseSamples(s Samples, links SampleLinks) error {
	if s == nil || links == nil {
		return errors.New("bot: samples need both casework's samples and the web's links")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.samples, b.links = s, links
	return nil
}

// sampleSide returns the samples and links, or false when not enabled.
func (b *Bot) sampleSide() (Samples, SampleLinks, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.samples, b.links, b.samples != nil
}

// Limits of the chat side.
const (
	// maxSampleButtons is how many Download sample buttons a desk card
	// carries (the newest samples): one Discord row of five, well within
	// Slack's 25 elements an actions block takes.
	maxSampleButtons = 5
	// maxFilesPerReply bounds the files taken from one message (Slack and
	// Discord both allow 10).
	maxFilesPerReply = 10
	// sampleValueSep separates the case and the sample in a Download
	// sample button's value ("EOD-12:34").
	sampleValueSep = ":"
)

// timeText is how links' expiries are shown.
func timeText(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 MST") }

// code is a trusted code span (hashes threatdesk computed).
func code(s string) Span { return Span{Text: s, Style: StyleCode} }

// ---- the upload link ----

// uploadLines tell the requester how to send a sample through link.
func (b *Bot) uploadLines(s Samples, links SampleLinks, ref string, link UploadLink) []Line {
	url := links.Upload(link.Token)
	lines := []Line{
		{T("Send it through this one-time link: "), L("upload a file sample for "+ref, url),
			T(" (one file of up to " + casework.FormatBytes(s.MaxBytes()) + ", until " + timeText(link.ExpiresAt) + "). It opens a page in any browser; ")},
		{T("from a terminal: "), code("curl -F file=@sample.bin " + url)},
		{T("Or post the file in this thread. Either way it is stored encrypted for the experts and is never passed on in chat.")},
	}
	if note := links.LocalNote(); note != "" {
		lines = append(lines, Line{T(note)})
	}
	return lines
}

// renderSampleNeeded renders a change to file_sample_needed: the status
// note in both threads, and in the requester's the upload link, issued once
// per event (its outbox row): a retried or re-leased delivery posts the
// same link.
func (b *Bot) renderSampleNeeded(ctx context.Context, c CaseView, ev CaseEvent, cards []part) ([]part, error) {
	// The expert's words come after what to do, which a platform cutting
	// a long note must not lose.
	bare := ev
	bare.Text = ""
	receipt, desk := b.statusNote(c, bare), b.statusNote(c, bare)
	s, links, ok := b.sampleSide()
	switch {
	case !ok:
		receipt.Text = append(receipt.Text, Line{T("Share it as your security policy allows and reply in this thread.")})
	case c.Status.open():
		req := UploadLinkRequest{Ref: c.Ref}
		if ev.OutboxID != 0 {
			req.Key = "outbox:" + strconv.FormatInt(ev.OutboxID, 10)
		}
		link, err := s.UploadLink(ctx, req)
		var refusal *Refusal
		switch {
		case errors.As(err, &refusal):
			// Closed or withdrawn since: no link to give.
		case err != nil:
			return nil, fmt.Errorf("upload link for %s: %w", c.Ref, err)
		default:
			receipt.Text = append(receipt.Text, b.uploadLines(s, links, c.Ref, link)...)
			desk.Text = append(desk.Text, Line{T("The requester got a one-time upload link, valid until " + timeText(link.ExpiresAt) +
				". The sample arrives here when they use it or post the file in their thread; /experts upload " + c.Ref + " gives them a fresh one.")})
		}
	}
	receipt.Text = append(receipt.Text, noteText(ev)...)
	desk.Text = append(desk.Text, noteText(ev)...)
	ps := append(cards, part{key: "receipt.note", thread: targetReceipt, msg: receipt}, part{key: "desk.note", thread: targetDesk, msg: desk})
	ps = append(ps, statusNoteRest(c, ev, "receipt.note", targetReceipt)...)
	return append(ps, statusNoteRest(c, ev, "desk.note", targetDesk)...), nil
}

// uploadCommand answers "/experts upload EOD-n": a fresh upload link for a
// member of the case's org, privately. Anyone else gets the answer an
// unknown case gets.
func (b *Bot) uploadCommand(ctx context.Context, w who, c Command, r request) (Message, error) {
	s, links, ok := b.sampleSide()
	if !ok {
		return Message{}, &Refusal{Msg: "File samples are not enabled in this deployment."}
	}
	if w.org == nil {
		return Message{}, &Refusal{Msg: "Ask for an upload link in your organisation's SOC channel."}
	}
	by := b.named(ctx, w.user)
	// Keyed by the command's delivery: a retry answers with the same link.
	link, err := s.UploadLink(ctx, UploadLinkRequest{Ref: r.ref, By: &by, Org: w.org.ID, Key: inboundKey(c.User.Platform, kindCommand, c.Key)})
	if err != nil {
		return Message{}, err
	}
	m := Message{Text: append([]Line{{B("A file sample for " + r.ref + "."), T(" ")}}, b.uploadLines(s, links, r.ref, link)...),
		Fallback: "Upload link for " + r.ref}
	return m, nil
}

// ---- Download sample ----

// sampleValue is a Download sample button's value.
func sampleValue(ref string, id int64) string {
	return ref + sampleValueSep + strconv.FormatInt(id, 10)
}

// parseSampleValue reads a Download sample button's value.
func parseSampleValue(v string) (string, int64, bool) {
	r, n, ok := strings.Cut(v, sampleValueSep)
	ref, okRef := normRef(r)
	id, err := strconv.ParseInt(n, 10, 64)
	return ref, id, ok && okRef && err == nil && id > 0
}

// deskSamples is the part of the desk card about samples: a section listing
// the newest ones and a Download sample button for each.
func deskSamples(c CaseView) (Section, []Button) {
	var live []SampleView
	for _, smp := range c.Samples {
		if !smp.Deleted {
			live = append(live, smp)
		}
	}
	if len(live) == 0 {
		return Section{}, nil
	}
	shown := live[max(len(live)-maxSampleButtons, 0):]
	sec := Section{Title: "File samples", More: len(live) - len(shown)}
	var buttons []Button
	for i, smp := range shown {
		label := "Download sample"
		if len(shown) > 1 {
			label += " " + strconv.Itoa(i+1)
		}
		l := Line{}
		if len(shown) > 1 {
			l = append(l, T(strconv.Itoa(i+1)+". "))
		}
		l = append(l, U(cut(smp.Name, maxListLineRunes)), T(" · "+casework.FormatBytes(smp.Size)+" · SHA-256 "), code(smp.SHA256))
		if smp.MatchText != "" {
			l = append(l, T(" · "), U(cut(smp.MatchText, maxListLineRunes)))
		}
		sec.Lines = append(sec.Lines, l)
		buttons = append(buttons, Button{Action: ActDownloadSample, Label: label, Value: sampleValue(c.Ref, smp.ID)})
	}
	return sec, buttons
}

// withSamples fills c.Samples for the desk card, when samples are on.
func (b *Bot) withSamples(ctx context.Context, c *CaseView) error {
	s, _, ok := b.sampleSide()
	if !ok {
		return nil
	}
	smps, err := s.List(ctx, c.Ref)
	if err != nil {
		return fmt.Errorf("samples of %s: %w", c.Ref, err)
	}
	c.Samples = smps
	return nil
}

// downloadSample answers a Download sample press: a short-lived link, for
// the expert who pressed, privately.
func (b *Bot) downloadSample(ctx context.Context, w who, a Action) (*Message, error) {
	s, links, ok := b.sampleSide()
	if !ok {
		return nil, &Refusal{Msg: "File samples are not enabled in this deployment."}
	}
	ref, id, ok := parseSampleValue(a.Value)
	if !ok {
		return nil, fmt.Errorf("download button value %q: %w", a.Value, ErrNotFound)
	}
	dl, err := s.DownloadLink(ctx, ref, id, b.named(ctx, w.user))
	if err != nil {
		return nil, err
	}
	smp := dl.Sample
	lines := []Line{
		{B("File sample of " + ref + ":"), T(" "), U(cut(smp.Name, maxListLineRunes)), T(" (" + casework.FormatBytes(smp.Size) + ")")},
		{T("SHA-256 "), code(smp.SHA256)},
		{L("Download it as a ZIP encrypted with the password infected", links.Download(dl.Token)),
			T(". The link works once, until " + timeText(dl.ExpiresAt) + ", for whoever opens it first: do not pass it on. Each download is recorded on the case's timeline under your name. Open it in your analysis machine.")},
	}
	if note := links.LocalNote(); note != "" {
		lines = append(lines, Line{T(note)})
	}
	return &Message{Text: lines, Fallback: "Download link for a sample of " + ref}, nil
}

// ---- the announcement ----

// SampleEvent is a stored sample, as its outbox event tells it.
type SampleEvent struct {
	ID                int64
	Name              string
	Size              int64
	MD5, SHA1, SHA256 string
	// Upload is true for a sample sent through an upload link (Address is
	// then the uploader's network address); false for a thread file.
	Upload  bool
	Address string
	// MatchText compares it with the case's file subject (desk only).
	MatchText string
	// Resumed: the sample ended a wait on the requester.
	Resumed bool
}

// renderSampleStored announces a sample to both sides by name, size and
// hash, and puts its Download sample button on the desk card. The file
// itself is never attached or linked.
func (b *Bot) renderSampleStored(c CaseView, ev CaseEvent) []part {
	smp := ev.Sample
	what := Line{U(cut(smp.Name, maxListLineRunes)), T(" (" + casework.FormatBytes(smp.Size) + ")")}
	hashes := Line{T("SHA-256 "), code(smp.SHA256)}
	resumed := Line{T("The requester answered: " + c.Ref + " is back in progress and its SLA clock runs again.")}

	desk := Message{Fallback: cut(c.Ref+": file sample "+smp.Name, maxListLineRunes)}
	head := Line{B("File sample for " + c.Ref + ":"), T(" ")}
	desk.Text = append(desk.Text, append(head, what...))
	from := Line{T("From "), U(cut(ev.Actor, maxListLineRunes))}
	switch {
	case smp.Upload:
		from = Line{T("Through the requester's upload link")}
		if smp.Address != "" {
			from = append(from, T(", from "), U(smp.Address))
		}
	case ev.Side == SideExpert:
		from = append(from, T(" (threat expert), posted in this thread"))
	default:
		from = append(from, T(" (requester, "+b.orgName(c.Org)+"), posted in their thread"))
	}
	desk.Text = append(desk.Text, append(from, T(".")), hashes,
		Line{T("SHA-1 "), code(smp.SHA1), T(" · MD5 "), code(smp.MD5)})
	if smp.MatchText != "" {
		desk.Text = append(desk.Text, Line{T("It "), U(smp.MatchText), T(".")})
	}
	if smp.Resumed {
		desk.Text = append(desk.Text, resumed)
	}
	if c.Status == StatusConcluded && ev.Side != SideExpert {
		// A sample still reaches a concluded case (an older upload link, a
		// file in the thread): say it is not being worked, as for messages.
		desk.Text = append(desk.Text, Line{T(c.Ref + " is concluded: this sample does not reopen it. The requester or a manager can Reopen it to have it worked again.")})
	}
	desk.Text = append(desk.Text, Line{T("Get it with the Download sample button on the case's card: a ZIP encrypted with the password infected. The file is never posted in chat.")})
	if ev.Side == SideExpert && !smp.Upload {
		// The requester is told a file was added, never given it: the
		// expert must not count on it reaching them.
		desk.Text = append(desk.Text, Line{T("The requester does not receive this file: describe what they need in the thread.")})
	}

	receipt := Message{Fallback: cut(c.Ref+": file sample "+smp.Name, maxListLineRunes)}
	switch {
	case smp.Upload:
		receipt.Text = append(receipt.Text, append(Line{B("File sample received for " + c.Ref + " through the upload link:"), T(" ")}, what...))
	case ev.Side == SideExpert:
		receipt.Text = append(receipt.Text, append(Line{B("The threat expert added a file to " + c.Ref + ":"), T(" ")}, what...),
			Line{T("threatdesk keeps it for the experts; it is not posted here.")})
	default:
		receipt.Text = append(receipt.Text, append(Line{B("Stored for the experts of " + c.Ref + ":"), T(" ")}, what...),
			Line{T("The file is encrypted in threatdesk and is not passed on in chat; the experts download it from there.")})
	}
	receipt.Text = append(receipt.Text, hashes)
	if smp.Resumed {
		receipt.Text = append(receipt.Text, resumed)
	}
	return []part{
		{key: "desk.card", update: targetDesk, msg: b.deskCard(c)},
		{key: "receipt.sample", thread: targetReceipt, msg: receipt},
		{key: "desk.sample", thread: targetDesk, msg: desk},
	}
}

// ---- files posted in threads ----

// relayFiles stores the files of a case thread reply as samples. A file
// that cannot be one (too large, empty, not offered by the platform) gets a
// note in the thread; the case refusing it (closed) a private note to the
// author. An error is worth retrying the reply: casework stores each file
// once, so a retry never stores one twice.
func (b *Bot) relayFiles(ctx context.Context, r Reply, ref string, side Side, w who) error {
	if len(r.Files) == 0 {
		return nil
	}
	s, _, ok := b.sampleSide()
	if !ok {
		b.log.Info("files posted in a case thread are ignored: samples are not enabled", "case", ref)
		return nil
	}
	a, ok := b.adapter(r.Message.Platform)
	if !ok {
		return fmt.Errorf("no %s adapter to fetch files with", r.Message.Platform)
	}
	fetcher, _ := a.(FileFetcher)
	tf := ThreadFile{Ref: ref, Role: RoleExpert, Author: b.named(ctx, r.Author), Chat: r.Message}
	if side == SideRequester {
		tf.Role, tf.Org = RoleMember, w.org.ID
	}
	var public, private []Line
	files := r.Files
	if len(files) > maxFilesPerReply {
		public = append(public, Line{T(fmt.Sprintf("Only the first %d files of a message are taken as samples; post the others again.", maxFilesPerReply))})
		files = files[:maxFilesPerReply]
	}
	for _, f := range files {
		err := b.storeFile(ctx, s, fetcher, tf, f)
		var refused *FileRefusedError
		var refusal *Refusal
		var de *DeliveryError
		name := Line{U(cut(f.Name, maxListLineRunes))}
		switch {
		case err == nil:
		case errors.As(err, &refused):
			public = append(public, append(name, T(" was not stored as a sample: "+refused.Msg)))
		case errors.As(err, &refusal):
			private = append(private, append(name, T(" was not stored: "+refusal.Msg)))
		case errors.As(err, &de) && de.Kind == Permanent:
			b.log.Warn("a file posted in a case thread cannot be fetched", "case", ref, "file", f.ID, "err", err)
			msg := " could not be fetched, so it was not stored as a sample"
			if de.Operator != "" {
				msg += " (" + de.Operator + ")"
			}
			if side == SideRequester {
				msg += ". Send it with /experts upload " + ref + " instead"
			}
			public = append(public, append(name, T(msg+".")))
		default:
			return fmt.Errorf("file %s of reply %s: %w", f.ID, r.Message.Message, err)
		}
	}
	// The notes go out once every file is settled, so that a retry after a
	// temporary failure does not repeat them.
	dest := Dest{Platform: r.Parent.Platform, Workspace: r.Parent.Workspace, Channel: r.Parent.Channel, Thread: &r.Parent}
	if len(public) > 0 {
		if _, err := a.Post(ctx, dest, Message{Text: public, Fallback: "A file was not stored as a sample"}); err != nil {
			return fmt.Errorf("note on files not stored: %w", err)
		}
	}
	if len(private) > 0 {
		if err := a.PostPrivate(ctx, dest, r.Author.ID, Message{Text: private, Fallback: "A file was not stored"}); err != nil {
			b.log.Warn("could not tell the author that a file was not stored", "err", err)
		}
	}
	return nil
}

// storeFile fetches one file and stores it.
func (b *Bot) storeFile(ctx context.Context, s Samples, fetcher FileFetcher, tf ThreadFile, f File) error {
	limit := s.MaxBytes()
	if f.Size > limit {
		return &FileRefusedError{Msg: fmt.Sprintf("it is %s, over the limit of %s.", casework.FormatBytes(f.Size), casework.FormatBytes(limit))}
	}
	if f.ID == "" {
		return &FileRefusedError{Msg: "the platform did not say which file it is."}
	}
	if fetcher == nil {
		return PermanentError("no_fetch", "this platform's adapter cannot fetch files", errors.New("adapter is no FileFetcher"))
	}
	body, err := fetcher.FetchFile(ctx, tf.Chat, f)
	if err != nil {
		return err
	}
	defer body.Close()
	tf.File, tf.Body = f, body
	if f.Size > 0 {
		tf.Body = &sizedReader{r: body, want: f.Size}
	}
	smp, err := s.StoreThreadFile(ctx, tf)
	if err != nil {
		return err
	}
	if !smp.Repeated {
		b.log.Info("file posted in a case thread stored as a sample", "case", tf.Ref, "sample", smp.ID, "size", smp.Size, "sha256", smp.SHA256)
	}
	return nil
}

// sizedReader ends with an error instead of io.EOF when the bytes do not
// add up to the size the platform declared (a cut-off transfer, a sign-in
// page instead of the file), so that nothing is stored.
type sizedReader struct {
	r    io.Reader
	want int64
	n    int64
}

func (s *sizedReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if s.n > s.want {
		return n, fmt.Errorf("the platform sent more than the %d bytes it declared", s.want)
	}
	if errors.Is(err, io.EOF) && s.n != s.want {
		return n, fmt.Errorf("the platform sent %d of the %d bytes it declared", s.n, s.want)
	}
	return n, err
}

// ---- inbound rows that fetch files ----

// fetchesFiles reports whether row's work fetches files, which may take
// longer than other work.
func (row inboundRow) fetchesFiles() bool {
	return row.event.Reply != nil && len(row.event.Reply.Files) > 0
}

// workTimeout bounds one attempt at row's work.
func (b *Bot) workTimeout(row inboundRow) time.Duration {
	if row.fetchesFiles() {
		return b.cfg.Inbound.FileTimeout
	}
	return b.cfg.Inbound.Timeout
}

// backgroundTimeout bounds the work a replica starts at once on a row it
// stored: its lease, or for a reply whose files are fetched the attempt
// and the time to answer and settle.
func (b *Bot) backgroundTimeout(row inboundRow) time.Duration {
	if !row.fetchesFiles() {
		return b.cfg.Inbound.Lease
	}
	return max(b.cfg.Inbound.Lease, b.cfg.Inbound.FileTimeout+b.cfg.Inbound.Timeout)
}

// keepLease extends the lease of a row whose work fetches files for as
// long as it runs, so that no other replica takes it meanwhile; call the
// function it returns when the work ends.
func (b *Bot) keepLease(row inboundRow) func() {
	if !row.fetchesFiles() {
		return func() {}
	}
	done := make(chan struct{})
	every := b.cfg.Inbound.Lease / 3
	b.life.GoWork("inbound lease", func(ctx context.Context) error {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return nil
			case <-t.C:
				if _, err := b.db.Exec(ctx, `UPDATE bot_inbound SET locked_until = now() + $2::interval
WHERE key = $1 AND attempts = $3 AND done_at IS NULL AND dead_at IS NULL`, row.key, b.cfg.Inbound.Lease, row.attempts); err != nil && ctx.Err() == nil {
					b.log.Warn("could not extend the lease of a reply whose files are being fetched", "err", err)
				}
			}
		}
	})
	return func() { close(done) }
}
