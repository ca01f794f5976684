package slackfake

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Files people post with messages, as Slack shows them to an app: the
// message event carries file objects (subtype file_share) whose
// url_private_download serves the bytes only with the bot token in an
// Authorization header, and only when the app has the files:read scope;
// otherwise Slack redirects to the workspace's sign-in page (slack-go's
// GetFile documents the redirect). A Slack Connect file comes as its id
// only (file_access check_file_info), and files.info describes it.
// https://docs.slack.dev/messaging/working-with-files
// https://docs.slack.dev/reference/events/message/file_share
// https://docs.slack.dev/reference/methods/files.info

// File is a file a person posts (UserFileMessage).
type File struct {
	// ID is the file's id; default a fresh F… id.
	ID   string
	Name string
	// Mimetype defaults to application/octet-stream.
	Mimetype string
	Data     []byte
	// CheckFileInfo posts it as a Slack Connect file: the event carries its
	// id only, and files.info tells the rest.
	CheckFileInfo bool
	// team is the workspace it was posted in (its channel's).
	team string
}

// Download is one request for a file's bytes.
type Download struct {
	FileID string
	// Authorized is whether it carried the bot token as a bearer token.
	Authorized bool
	Status     int
	At         time.Time
}

// UserFileMessage stores a message a person posts with files (in a thread
// when threadTS is set) and returns its Events API callback, as Slack
// delivers it: subtype file_share, the files' objects in "files".
func (s *Server) UserFileMessage(channel, threadTS, user, text string, files ...File) (Message, map[string]any) {
	m, cb := s.UserMessage(channel, threadTS, user, text)
	objs := make([]any, 0, len(files))
	s.mu.Lock()
	if s.files == nil {
		s.files = map[string]*File{}
	}
	for _, f := range files {
		f.ID = or(f.ID, s.nextID("F"))
		f.Mimetype = or(f.Mimetype, "application/octet-stream")
		f.team = s.teamOf(channel)
		stored := f
		s.files[f.ID] = &stored
		m.Files = append(m.Files, f.ID)
		if f.CheckFileInfo {
			objs = append(objs, map[string]any{"id": f.ID, "mode": "file_access", "file_access": "check_file_info",
				"created": 0, "timestamp": 0, "user": ""})
		} else {
			objs = append(objs, s.fileJSON(&stored, user))
		}
	}
	if sm := s.find(channel, m.TS); sm != nil {
		sm.Files = m.Files
	}
	s.mu.Unlock()
	ev := cb["event"].(map[string]any)
	ev["subtype"], ev["files"], ev["upload"], ev["display_as_bot"] = "file_share", objs, true, false
	return m, cb
}

// Downloads returns the requests for files' bytes so far.
func (s *Server) Downloads() []Download {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Download(nil), s.downloads...)
}

// fileJSON is a hosted file's object; s.mu is held.
func (s *Server) fileJSON(f *File, user string) map[string]any {
	team := or(f.team, s.o.TeamID)
	base := s.http.URL + "/files-pri/" + team + "-" + f.ID + "/"
	name := url.PathEscape(f.Name)
	now := time.Now().Unix()
	return map[string]any{
		"id": f.ID, "created": now, "timestamp": now, "name": f.Name, "title": f.Name, "mimetype": f.Mimetype,
		"filetype": "binary", "pretty_type": "Binary", "user": user, "user_team": team, "editable": false,
		"size": len(f.Data), "mode": "hosted", "is_external": false, "external_type": "", "is_public": false,
		"public_url_shared": false, "display_as_bot": false, "username": "",
		"url_private": base + name, "url_private_download": base + "download/" + name,
		"permalink": s.http.URL + "/files/" + user + "/" + f.ID + "/" + name,
	}
}

// filesInfo answers files.info.
func (s *Server) filesInfo(req apiRequest) map[string]any {
	if s.o.NoFilesRead {
		return map[string]any{"ok": false, "error": "missing_scope", "needed": "files:read",
			"provided": "commands,chat:write,channels:history,groups:history,users:read"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[req.get("file")]
	if !ok || or(f.team, s.o.TeamID) != or(req.team, s.o.TeamID) {
		return errResp("file_not_found")
	}
	return map[string]any{"ok": true, "file": s.fileJSON(f, ""), "comments": []any{},
		"paging": map[string]any{"count": 100, "total": 0, "page": 1, "pages": 0}}
}

// serveFile serves a file's bytes at its url_private(_download): with the
// bot token and files:read, the bytes; otherwise a redirect to the sign-in
// page, carrying the file's path in redir.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	fileTeam, id, _ := strings.Cut(r.PathValue("file"), "-")
	auth, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	tokTeam, bad := s.tokenTeam(auth)
	authorized := bad == "" && tokTeam == fileTeam && !s.o.NoFilesRead
	f, ok := s.files[id]
	status := http.StatusOK
	switch {
	case !authorized:
		status = http.StatusFound
	case !ok:
		status = http.StatusNotFound
	}
	s.downloads = append(s.downloads, Download{FileID: id, Authorized: authorized, Status: status, At: time.Now()})
	s.mu.Unlock()
	switch status {
	case http.StatusFound:
		http.Redirect(w, r, s.http.URL+"/?redir="+url.QueryEscape(r.URL.Path), http.StatusFound)
	case http.StatusNotFound:
		http.Error(w, "file not found", http.StatusNotFound)
	default:
		w.Header().Set("Content-Type", f.Mimetype)
		w.Header().Set("Content-Length", strconv.Itoa(len(f.Data)))
		_, _ = w.Write(f.Data)
	}
}

// serveSignIn is the workspace's sign-in page, where downloads without
// access end up.
func (s *Server) serveSignIn(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte("<!DOCTYPE html><html><head><title>Sign in | Slack</title></head><body>Sign in to Fake</body></html>"))
}
