package web

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/internal/aeszip"
)

// SamplePassword is the password of every sample ZIP: the convention among
// malware analysts, so that mail and endpoint filters leave the file alone.
const SamplePassword = "infected"

// askAgain is the sentence of a refused upload link on what to do next.
const askAgain = "To get a fresh link, type /experts upload followed by the case reference (for example /experts upload EOD-12) in your organisation's SOC channel, where the case was asked."

// uploadView is the data of upload.html.
type uploadView struct {
	Ref, Question, SubjectFile, Limit, Expires, URL string
}

// uploadedView is the data of uploaded.html.
type uploadedView struct {
	Ref, Name, Size, SHA256, SHA1, MD5 string
}

// serveUpload is GET (the page) and POST (the file) of /samples/u/{token}.
func (h *Handler) serveUpload(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		info, err := h.cfg.Samples.UploadLinkInfo(r.Context(), token)
		if err != nil {
			h.refuseUpload(w, r, err)
			return
		}
		v := uploadView{Ref: info.Ref, Question: info.Question, Limit: casework.FormatBytes(info.MaxBytes),
			Expires: info.ExpiresAt.In(h.cfg.Location).Format("2 January 2006 15:04 MST"), URL: h.cfg.Links.Upload(token)}
		if info.Subject.Kind == casework.SubjectFile {
			v.SubjectFile = info.Subject.ID
		}
		if !wantsHTML(r) {
			h.say(w, r, http.StatusOK, message{Title: "Send a file sample for " + info.Ref,
				Lines: []string{"Send one file of at most " + v.Limit + " until " + v.Expires + ":",
					"curl -F file=@sample.bin " + v.URL}})
			return
		}
		h.render(w, http.StatusOK, "upload", false, v)
	case http.MethodPost:
		h.upload(w, r, token)
	default:
		h.methodNotAllowed(w, r, "GET, POST")
	}
}

// A refused upload's body is read and dropped for at most this long and
// this much after the answer (see upload), and never past the route's cap
// (MaxBody): a file over it is reset, as before.
const (
	refusedDrainTime  = 2 * time.Second
	refusedDrainBytes = 64 << 20
)

// upload streams the multipart field "file" into casework.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request, token string) {
	// Only a live link gets the long deadlines below: anyone else is
	// answered before the body is read, or they could hold a connection
	// for the whole transfer time with a byte a minute.
	if _, err := h.cfg.Samples.UploadLinkInfo(r.Context(), token); err != nil {
		// Answered at once, then closed: the server would otherwise read
		// what is left of the body first, at the sender's pace. Before
		// closing, what still comes is read and dropped for a moment,
		// bounded in time and size: a connection closed with unread data
		// is reset, and the sender (curl: "Connection reset by peer")
		// could lose the answer that says what to do.
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		w.Header().Set("Connection", "close")
		h.refuseUpload(w, r, err)
		_ = rc.Flush()
		_ = rc.SetReadDeadline(time.Now().Add(refusedDrainTime))
		_, _ = io.CopyN(io.Discard, r.Body, refusedDrainBytes)
		return
	}
	// The server's read timeout is for ordinary requests; a sample may
	// take a while on a slow line.
	rc := http.NewResponseController(w)
	end := time.Now().Add(h.cfg.TransferTimeout)
	_ = rc.SetWriteDeadline(end.Add(time.Minute))
	r.Body = &idleBody{ReadCloser: r.Body, rc: rc, idle: h.cfg.UploadIdle, end: end, start: time.Now(), rate: h.cfg.UploadMinRate}
	mr, err := r.MultipartReader()
	if err != nil {
		h.m.uploads.WithLabelValues("not_multipart").Inc()
		h.say(w, r, http.StatusUnsupportedMediaType, message{Title: "Send the file as a form upload",
			Lines: []string{"Post it as multipart/form-data in a field named file, as the page's form does, or with curl -F file=@sample.bin " +
				h.cfg.Links.Upload(token)}})
		return
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			h.m.uploads.WithLabelValues("no_file").Inc()
			h.say(w, r, http.StatusBadRequest, message{Title: "No file was sent",
				Lines: []string{"The form had no field named file. Choose a file and send it again; nothing was stored."}})
			return
		}
		if err != nil {
			h.refuseUpload(w, r, &casework.ReadError{Err: err})
			return
		}
		if part.FormName() != "file" {
			// Another field: not ours, skipped (the route's body cap bounds it).
			_, _ = io.Copy(io.Discard, part)
			continue
		}
		smp, err := h.cfg.Samples.StoreSample(r.Context(), casework.Upload{Token: token, Source: casework.SourceUpload,
			Name: part.FileName(), Body: part, Address: clientAddress(r)})
		if err != nil {
			h.refuseUpload(w, r, err)
			return
		}
		h.m.uploads.WithLabelValues("stored").Inc()
		if !wantsHTML(r) {
			h.say(w, r, http.StatusCreated, message{Title: "Received " + smp.Name + " for " + smp.Ref + ": " + casework.FormatBytes(smp.Size),
				Lines: []string{"SHA-256 " + smp.SHA256, "SHA-1 " + smp.SHA1, "MD5 " + smp.MD5, "The experts have been told."}})
			return
		}
		h.render(w, http.StatusCreated, "uploaded", false, uploadedView{Ref: smp.Ref, Name: smp.Name,
			Size:   casework.FormatBytes(smp.Size) + " (" + strconv.FormatInt(smp.Size, 10) + " bytes)",
			SHA256: smp.SHA256, SHA1: smp.SHA1, MD5: smp.MD5})
		return
	}
}

// refuseUpload answers a refused upload (or upload page) with what to do.
func (h *Handler) refuseUpload(w http.ResponseWriter, r *http.Request, err error) {
	var le *casework.LinkError
	var tl *casework.TooLargeError
	var re *casework.ReadError
	var mbe *http.MaxBytesError
	outcome, status, m := "", 0, message{}
	switch {
	case errors.As(err, &le):
		outcome = "link_" + string(le.Problem)
		switch le.Problem {
		case casework.LinkUsed:
			status, m = http.StatusGone, message{Title: "This upload link was already used",
				Lines: []string{"It took a file on " + le.At.In(h.cfg.Location).Format("2 January 2006 at 15:04 MST") + "; each link takes one file.", askAgain}}
		case casework.LinkExpired:
			status, m = http.StatusGone, message{Title: "This upload link has expired",
				Lines: []string{fmt.Sprintf("Upload links work for %d hours; this one ended on %s.", int(casework.UploadLinkTTL.Hours()),
					le.At.In(h.cfg.Location).Format("2 January 2006 at 15:04 MST")), askAgain}}
		case casework.LinkBusy:
			status, m = http.StatusConflict, message{Title: "An upload through this link is in progress",
				Lines: []string{"Another file is being sent through this link right now. Wait for it to finish; if it fails, try again."}}
		case casework.LinkCaseClosed:
			status, m = http.StatusGone, message{Title: "The case of this link is closed",
				Lines: []string{"If the experts still need the file, reopen the case from its receipt in your chat, then ask for a fresh link.",
					askAgain}}
			if le.Status == casework.StatusWithdrawn {
				// A withdrawn case cannot be reopened.
				m = message{Title: "The case of this link was withdrawn",
					Lines: []string{"A withdrawn case takes no more files. If the experts should look at this file, ask them in a new case: /experts ask, or /experts file with its hash."}}
			}
		default:
			status, m = http.StatusNotFound, message{Title: "This upload link is not valid",
				Lines: []string{"Check that the whole link was copied.", askAgain}}
		}
	case errors.As(err, &tl), errors.As(err, &mbe):
		outcome, status = "too_large", http.StatusRequestEntityTooLarge
		m = message{Title: "The file is too large", Lines: []string{
			"The limit is " + casework.FormatBytes(h.cfg.MaxSampleBytes) + "; nothing was stored.",
			"If the experts need a larger file, tell them in the case thread."}}
		if tl != nil && tl.Case {
			m = message{Title: "This case holds as many samples as it can", Lines: []string{
				"Its samples would take more than " + casework.FormatBytes(tl.Limit) + " in all (" + casework.FormatBytes(tl.Stored) +
					" stored already); nothing was stored.",
				"Ask the experts in the case thread which files they still need."}}
		}
	case errors.Is(err, casework.ErrEmptySample):
		outcome, status = "empty", http.StatusBadRequest
		m = message{Title: "The file is empty", Lines: []string{"Nothing was stored. Choose the file and send it again; the link still works."}}
	case errors.As(err, &re):
		outcome, status = "interrupted", http.StatusBadRequest
		m = message{Title: "The upload was interrupted", Lines: []string{
			"The file did not arrive whole, so nothing was stored. Send it again; the link still works."}}
	default:
		outcome, status = "failed", http.StatusInternalServerError
		h.log.ErrorContext(r.Context(), "sample upload failed", "err", err)
		m = message{Title: "The file could not be stored", Lines: []string{
			"Something went wrong on threatdesk's side and nothing was stored. Try again in a few minutes; the link still works."}}
	}
	if r.Method == http.MethodPost {
		h.m.uploads.WithLabelValues(outcome).Inc()
	}
	h.say(w, r, status, m)
}

// previewAgents are link expanders of chat apps and social sites: they
// fetch a link posted in a message to show a preview, and must neither
// get a sample nor be recorded as a download.
var previewAgents = []string{"slackbot", "slack-imgproxy", "discordbot", "twitterbot", "facebookexternalhit",
	"linkedinbot", "telegrambot", "whatsapp", "skypeuripreview", "microsoftpreview", "mattermost-bot"}

func isPreviewAgent(ua string) bool {
	ua = strings.ToLower(ua)
	for _, p := range previewAgents {
		if strings.Contains(ua, p) {
			return true
		}
	}
	return false
}

// serveDownload is GET /samples/d/{token}: the sample as a ZIP encrypted
// with SamplePassword.
func (h *Handler) serveDownload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		h.methodNotAllowed(w, r, "GET")
		return
	}
	if isPreviewAgent(r.UserAgent()) {
		h.m.downloads.WithLabelValues("preview_refused").Inc()
		h.say(w, r, http.StatusForbidden, message{Title: "No previews of samples",
			Lines: []string{"Link previews are not served. Open the link in a browser."}})
		return
	}
	dl, err := h.cfg.Samples.OpenSample(r.Context(), r.PathValue("token"), clientAddress(r), h.stillExpert)
	if err != nil {
		h.refuseDownload(w, r, err)
		return
	}
	defer func() { _ = dl.Body.Close() }()
	smp := dl.Sample
	entry := aeszip.Header{Name: smp.Name, Size: smp.Size, Modified: smp.CreatedAt}
	comment := fmt.Sprintf("threatdesk %s sample %d: %s, %d bytes, SHA-256 %s. Password: %s. Handle it as malware.",
		smp.Ref, smp.ID, smp.Name, smp.Size, smp.SHA256, SamplePassword)
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.TransferTimeout))
	hd := w.Header()
	secureHeaders(hd, strictCSP)
	hd.Set("Content-Type", "application/zip")
	hd.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-sample-%d.zip"`, smp.Ref, smp.ID))
	hd.Set("Content-Length", strconv.FormatInt(aeszip.ArchiveSize(comment, entry), 10))
	w.WriteHeader(http.StatusOK)
	zw := aeszip.NewWriter(w, SamplePassword)
	err = zw.SetComment(comment)
	var f io.Writer
	if err == nil {
		f, err = zw.Create(entry)
	}
	if err == nil {
		_, err = io.Copy(f, dl.Body)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		// The headers are out: the short body (against Content-Length)
		// tells the client the download failed.
		h.m.downloads.WithLabelValues("failed").Inc()
		h.log.ErrorContext(r.Context(), "sample download broke off", "ref", smp.Ref, "sample", smp.ID, "err", err)
		return
	}
	h.m.downloads.WithLabelValues("sent").Inc()
}

// refuseDownload answers a refused download link with what to do.
func (h *Handler) refuseDownload(w http.ResponseWriter, r *http.Request, err error) {
	var le *casework.LinkError
	again := "Press Download sample on the case card in the desk channel for a fresh link."
	outcome, status, m := "", 0, message{}
	switch {
	case errors.As(err, &le) && le.Problem == casework.LinkExpired:
		outcome, status = "link_expired", http.StatusGone
		m = message{Title: "This download link has expired", Lines: []string{
			fmt.Sprintf("Download links work for %d minutes.", int(casework.DownloadLinkTTL.Minutes())), again}}
	case errors.As(err, &le) && le.Problem == casework.LinkDownloaded:
		outcome, status = "link_used", http.StatusGone
		m = message{Title: "This download link was already used", Lines: []string{
			"It served the sample on " + le.At.In(h.cfg.Location).Format("2 January 2006 at 15:04 MST") +
				"; each link works once, so that the record says who downloaded what.", again}}
	case errors.As(err, &le) && le.Problem == casework.LinkSampleDeleted:
		outcome, status = "sample_deleted", http.StatusGone
		m = message{Title: "This sample was deleted", Lines: []string{
			"Its bytes were deleted on " + le.At.In(h.cfg.Location).Format("2 January 2006") + ", after the retention period that follows the case's closing."}}
	case errors.As(err, &le) && le.Problem == casework.LinkNotExpert:
		outcome, status = "not_expert", http.StatusForbidden
		m = message{Title: "This download link no longer works", Lines: []string{
			"threatdesk's configuration no longer lists the expert it was issued to as a threat expert. Ask your threatdesk admin."}}
	case errors.As(err, &le):
		outcome, status = "link_unknown", http.StatusNotFound
		m = message{Title: "This download link is not valid", Lines: []string{"Check that the whole link was copied.", again}}
	default:
		outcome, status = "failed", http.StatusInternalServerError
		h.log.ErrorContext(r.Context(), "sample download failed", "err", err)
		m = message{Title: "The sample could not be opened", Lines: []string{
			"Something went wrong on threatdesk's side. Try again in a few minutes."}}
	}
	h.m.downloads.WithLabelValues(outcome).Inc()
	h.say(w, r, status, m)
}

// stillExpert reports whether the running config still makes p a threat
// expert (a download link's expert; no directory yet: nobody is).
func (h *Handler) stillExpert(p casework.Person) bool {
	d := h.directory()
	if d == nil {
		return false
	}
	u := d.WebAccess(bot.User{Platform: bot.Platform(p.Platform), Workspace: p.Workspace, ID: p.UserID}, "")
	return slices.Contains(u.Roles, bot.RoleExpert)
}

// clientAddress is the peer's address for the record, with what a proxy
// in front says (X-Forwarded-For, kept to address characters: it is only
// what the request claims).
func clientAddress(r *http.Request) string {
	addr := r.RemoteAddr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		clean := strings.Map(func(c rune) rune {
			switch {
			case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c == '.', c == ':', c == ',', c == ' ':
				return c
			}
			return -1
		}, xff)
		if len(clean) > 100 {
			clean = clean[:100]
		}
		addr += " (X-Forwarded-For: " + strings.TrimSpace(clean) + ")"
	}
	return addr
}

// idleBody moves the connection's read deadline on before every read: the
// whole upload must end by end, each read must bring bytes within idle,
// and after the first idle the bytes must come at rate (bytes a second)
// on average, so that a client that stalls, or trickles a byte now and
// then, is cut soon, not after the whole transfer timeout.
type idleBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	idle  time.Duration
	end   time.Time
	start time.Time
	rate  int64
	n     int64
	// back is when the last Read returned: a longer gap than idle before
	// the next is the server's own wait (a store slot), not the client's
	// slowness, and starts the rate's count again.
	back time.Time
}

func (b *idleBody) Read(p []byte) (int, error) {
	now := time.Now()
	if !b.back.IsZero() && now.Sub(b.back) > b.idle {
		b.start, b.n = now, 0
	}
	defer func() { b.back = time.Now() }()
	d := now.Add(b.idle)
	// When the bytes read so far fall under the rate.
	if b.rate > 0 {
		if slow := b.start.Add(b.idle + time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second))); slow.Before(d) {
			d = slow
		}
	}
	if d.After(b.end) {
		d = b.end
	}
	_ = b.rc.SetReadDeadline(d)
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
