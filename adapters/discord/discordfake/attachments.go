package discordfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Attachments: files people post with messages. MESSAGE_CREATE carries
// them (to sessions with the Message Content intent only), each with a CDN
// URL signed to expire: ex (when it expires, hex Unix seconds), is (when it
// was issued) and hm (the signature). The CDN serves the bytes to whoever
// has a valid URL, no token needed, and answers 404 once the URL expired or
// its signature does not match.
// https://discord.com/developers/docs/resources/message#attachment-object
// https://discord.com/developers/docs/reference#signed-attachment-cdn-urls

// Attachment is a file of a message: posted by a person (SayWithFiles) or
// sent by the bot (multipart files[n], files.go).
type Attachment struct {
	ID          string `json:"id"`
	Filename    string `json:"filename"`
	Description string `json:"description,omitempty"`
	Size        int    `json:"size"`
	URL         string `json:"url"`
	ProxyURL    string `json:"proxy_url"`
	ContentType string `json:"content_type,omitempty"`
	// Data is the file's bytes (not sent in events).
	Data []byte `json:"-"`

	channel string
}

// AttachmentDownload is one request to the CDN.
type AttachmentDownload struct {
	ID string
	// WithToken is whether it carried an Authorization header (the CDN
	// needs none; a bot should not send its token there).
	WithToken bool
	Status    int
	At        time.Time
}

// attachmentTTL is how long a signed CDN URL works (Discord: about a day).
const attachmentTTL = 24 * time.Hour

// SayWithFiles posts a message with attachments as user u and dispatches
// MESSAGE_CREATE. Each attachment gets an id and a signed CDN URL on the
// fake; its Size is the data's length unless set.
func (s *Server) SayWithFiles(channelID string, u User, content string, files ...Attachment) Message {
	s.mu.Lock()
	if _, ok := s.users[u.ID]; !ok {
		s.users[u.ID] = u
	}
	if s.attachments == nil {
		s.attachments = map[string]*Attachment{}
	}
	c := s.channels[channelID]
	m := &Message{ID: s.nextID(), ChannelID: channelID, GuildID: c.GuildID, Author: u, Content: content, Created: time.Now()}
	for _, f := range files {
		f.ID, f.channel = s.nextID(), channelID
		if f.Size == 0 {
			f.Size = len(f.Data)
		}
		f.URL = s.signedURL(channelID, f.ID, f.Filename, time.Now().Add(attachmentTTL))
		f.ProxyURL = f.URL
		stored := f
		s.attachments[f.ID] = &stored
		m.Attachments = append(m.Attachments, f)
	}
	s.store(m)
	out := *m
	s.mu.Unlock()
	s.dispatchMessage(out)
	return out
}

// ExpiredURL returns a's CDN URL as it reads once expired (for tests of
// what a late fetch gets).
func (s *Server) ExpiredURL(a Attachment) string {
	return s.signedURL(a.channel, a.ID, a.Filename, time.Now().Add(-time.Minute))
}

// AttachmentDownloads returns the CDN requests so far.
func (s *Server) AttachmentDownloads() []AttachmentDownload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]AttachmentDownload(nil), s.attDownloads...)
}

// attachmentsJSON is a message's attachments as an event carries them.
func attachmentsJSON(m Message) []Attachment {
	if m.Attachments == nil {
		return []Attachment{}
	}
	return m.Attachments
}

// signedURL is the CDN URL of an attachment, valid until exp.
func (s *Server) signedURL(channel, id, name string, exp time.Time) string {
	path := "/attachments/" + channel + "/" + id + "/" + url.PathEscape(name)
	ex, is := strconv.FormatInt(exp.Unix(), 16), strconv.FormatInt(time.Now().Unix(), 16)
	return s.srv.URL + path + "?ex=" + ex + "&is=" + is + "&hm=" + s.attachmentMAC(channel, id, ex, is) + "&"
}

func (s *Server) attachmentMAC(channel, id, ex, is string) string {
	m := hmac.New(sha256.New, []byte("discordfake-cdn/"+s.opts.Token))
	m.Write([]byte(channel + "/" + id + "/" + ex + "/" + is))
	return hex.EncodeToString(m.Sum(nil))
}

// serveAttachment is the CDN.
func (s *Server) serveAttachment(w http.ResponseWriter, r *http.Request) {
	channel, id := r.PathValue("channel"), r.PathValue("id")
	q := r.URL.Query()
	ex, is, hm := q.Get("ex"), q.Get("is"), q.Get("hm")
	exp, err := strconv.ParseInt(ex, 16, 64)
	valid := err == nil && hmac.Equal([]byte(hm), []byte(s.attachmentMAC(channel, id, ex, is))) && time.Now().Unix() < exp
	s.mu.Lock()
	a, ok := s.attachments[id]
	status := http.StatusOK
	if !ok || !valid {
		status = http.StatusNotFound
	}
	s.attDownloads = append(s.attDownloads, AttachmentDownload{ID: id, WithToken: r.Header.Get("Authorization") != "", Status: status, At: time.Now()})
	s.mu.Unlock()
	s.changes.Notify()
	if status != http.StatusOK {
		http.Error(w, "This content is no longer available.", http.StatusNotFound)
		return
	}
	if a.ContentType != "" {
		w.Header().Set("Content-Type", a.ContentType)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(a.Data)))
	_, _ = w.Write(a.Data)
}
