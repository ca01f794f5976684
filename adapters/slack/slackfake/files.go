package slackfake

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// File uploads as Slack takes them (the flow that replaced files.upload),
// and direct messages:
//
//  1. files.getUploadURLExternal (filename, length; optional alt_txt,
//     snippet_type) answers an upload_url and a file_id.
//  2. The app POSTs the bytes to upload_url, raw or multipart-encoded; HTTP
//     200 means received, anything else failed.
//  3. files.completeUploadExternal (files: [{id, title}]; optional
//     channel_id or channels, initial_comment, blocks, thread_ts) finishes
//     the upload, once, and shares the files where it says: without a
//     channel they stay private to the uploader. Sharing posts a message
//     in the channel (initial_comment, or blocks when there is none).
//
// conversations.open (users) opens, or finds, the direct message channel
// between the bot and one user (D…).
//
// https://docs.slack.dev/reference/methods/files.getUploadURLExternal
// https://docs.slack.dev/reference/methods/files.completeUploadExternal
// https://docs.slack.dev/messaging/working-with-files#upload
// https://docs.slack.dev/reference/methods/conversations.open

// Upload limits the fake enforces.
const (
	// MaxAltText is the longest alt_txt (alt_txt_too_large beyond).
	MaxAltText = 1000
	// MaxUploadBytes is the largest file Slack takes (1 GB).
	MaxUploadBytes = 1 << 30
)

// Upload is a file uploaded through the external upload flow.
type Upload struct {
	ID    string
	Name  string
	Title string
	// Length is the size the app announced; Data what it uploaded.
	Length int
	Data   []byte
	// Uploaded is when the bytes arrived; Completed when
	// files.completeUploadExternal finished it (zero until then).
	Uploaded, Completed time.Time
	// Shares are the channels it was shared to, each with the message
	// that shared it; none when it stayed private.
	Shares []Share
}

// Share is a file shared to a channel.
type Share struct {
	Channel string
	// TS is the message that shared it (its text the initial comment).
	TS string
}

// DM is an open direct message channel with one user.
type DM struct {
	Channel string
	User    string
}

// fileStore is the fake's files and direct messages.
type fileStore struct {
	files map[string]*Upload // by id
	byURL map[string]string  // upload URL id -> file id
}

// store returns the file store, made on first use; s.mu is held.
func (s *Server) store() *fileStore {
	if s.filestore == nil {
		s.filestore = &fileStore{files: map[string]*Upload{}, byURL: map[string]string{}}
	}
	return s.filestore
}

// Files returns the uploaded files, completed or not, in upload order.
func (s *Server) Files() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Upload
	for _, f := range s.store().files {
		c := *f
		c.Data = append([]byte(nil), f.Data...)
		c.Shares = append([]Share(nil), f.Shares...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// DMs returns the open direct message channels.
func (s *Server) DMs() []DM {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []DM
	for _, c := range s.channels {
		if c.IM {
			out = append(out, DM{Channel: c.ID, User: c.User})
		}
	}
	return out
}

// DMUser returns the user a direct message channel is with.
func (s *Server) DMUser(channel string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.channels[channel]; ok && c.IM {
		return c.User, true
	}
	return "", false
}

func (s *Server) getUploadURL(req apiRequest) map[string]any {
	name, length := req.get("filename"), req.get("length")
	if name == "" || length == "" {
		return errResp("invalid_arguments")
	}
	n, err := strconv.Atoi(length)
	switch {
	case err != nil || n < 0:
		return errResp("invalid_arguments")
	case n == 0:
		return errResp("missing_argument") // "typically only occurs when the length provided is 0"
	case n > MaxUploadBytes:
		return errResp("file_upload_size_restricted")
	}
	if len([]rune(req.get("alt_txt"))) > MaxAltText {
		return errResp("alt_txt_too_large")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.store()
	id := s.nextID("F")
	urlID := s.nextID("U") + strconv.FormatInt(time.Now().UnixNano(), 36)
	st.files[id] = &Upload{ID: id, Name: name, Length: n}
	st.byURL[urlID] = id
	return map[string]any{"ok": true, "upload_url": s.http.URL + "/upload/v1/" + urlID, "file_id": id}
}

// serveUpload takes a file's bytes at its upload URL: the raw body, or the
// file part of a multipart form.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	id, ok := s.store().byURL[r.PathValue("id")]
	var f *Upload
	if ok {
		f = s.store().files[id]
	}
	s.mu.Unlock()
	if !ok || !f.Uploaded.IsZero() || !f.Completed.IsZero() {
		http.Error(w, "unknown or used upload URL", http.StatusNotFound)
		return
	}
	data, err := readUpload(r)
	if err != nil {
		s.violate("upload to %s: %v", f.Name, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(data) != f.Length {
		s.violate("upload to %s: %d bytes sent, %d announced in files.getUploadURLExternal's length", f.Name, len(data), f.Length)
		http.Error(w, "length mismatch", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	f.Data, f.Uploaded = data, time.Now()
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = fmt.Fprintf(w, "OK - %d", len(data))
}

// readUpload reads an upload's bytes: a multipart form's one file part, or
// the raw body.
func readUpload(r *http.Request) ([]byte, error) {
	body := io.LimitReader(r.Body, MaxUploadBytes+1)
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return io.ReadAll(body)
	}
	mr := multipart.NewReader(body, params["boundary"])
	var data []byte
	files := 0
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("multipart body: %w", err)
		}
		if p.FileName() == "" {
			continue
		}
		files++
		if data, err = io.ReadAll(p); err != nil {
			return nil, fmt.Errorf("multipart file part: %w", err)
		}
	}
	if files != 1 {
		return nil, fmt.Errorf("a multipart upload carries one file part, got %d", files)
	}
	return data, nil
}

func (s *Server) completeUpload(req apiRequest) map[string]any {
	var files []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(req.get("files")), &files); err != nil || len(files) == 0 {
		return errResp("invalid_arguments")
	}
	text, blocks := req.get("initial_comment"), req.get("blocks")
	if text != "" {
		blocks = "" // "If initial_comment is provided, the blocks field is ignored"
	}
	clipped := false
	switch {
	case text != "":
		if code := s.checkMessage(req.method, text, ""); code != "" {
			return errResp(code)
		}
		text, clipped = clip(text)
	case blocks != "" && blocks != "[]":
		// The method has no top-level text: the blocks stand alone.
		var bs []map[string]any
		if err := json.Unmarshal([]byte(blocks), &bs); err != nil {
			s.violate("%s: blocks are not a JSON array: %v", req.method, err)
			return errResp("invalid_blocks_format")
		}
		if len(bs) > maxMessageBlocks {
			s.violate("%s: %d blocks, Slack allows %d", req.method, len(bs), maxMessageBlocks)
			return errResp("invalid_blocks")
		}
		if !s.checkBlocks(req.method, bs, false) {
			return errResp("invalid_blocks")
		}
	}
	var channels []string
	if ch := req.get("channel_id"); ch != "" {
		channels = append(channels, ch)
	}
	if cs := req.get("channels"); cs != "" {
		channels = append(channels, strings.Split(cs, ",")...)
	}
	thread := req.get("thread_ts")
	if thread != "" && len(channels) != 1 {
		return errResp("invalid_arguments") // thread_ts: one channel
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.store()
	var done []*Upload
	for _, x := range files {
		f, ok := st.files[x.ID]
		if !ok || f.Uploaded.IsZero() || !f.Completed.IsZero() {
			return errResp("file_not_found")
		}
		done = append(done, f)
	}
	for _, ch := range channels {
		if _, code := s.channelFor(ch, req.team); code != "" {
			return errResp(code)
		}
	}
	now := time.Now()
	out := []any{}
	for i, f := range done {
		f.Title, f.Completed = files[i].Title, now
		out = append(out, map[string]any{"id": f.ID, "title": f.Title})
	}
	for _, ch := range channels {
		botUser, botID := s.bot(req.team)
		m := &Message{Channel: ch, TS: s.nextTS(), ThreadTS: thread, User: botUser, BotID: botID, Team: s.teamOf(ch), Text: text,
			Blocks: rawOrNil(s.withBlockIDs(blocks)), PostedAt: now}
		s.messages = append(s.messages, m)
		for _, f := range done {
			f.Shares = append(f.Shares, Share{Channel: ch, TS: m.TS})
		}
	}
	return warnTruncated(map[string]any{"ok": true, "files": out}, clipped)
}
