package discordfake

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Messages with files, as Discord takes them: a multipart/form-data body
// whose payload_json part is the message's JSON and whose files[n] parts
// are the files, each with a filename; n is the attachment's "snowflake
// placeholder", which the message's attachments array may use to describe
// it ({"id": n, "filename", "description"}). On an edit, only the files the
// attachments array lists are kept (old ones by id, new ones by
// placeholder). Each file may be at most MaxAttachmentBytes (40005 Request
// entity too large beyond), a message at most MaxAttachments files.
// https://discord.com/developers/docs/reference#uploading-files
// https://discord.com/developers/docs/reference#editing-message-attachments

// Upload limits.
const (
	MaxAttachmentBytes       = 10 << 20
	MaxAttachments           = 10
	MaxAttachmentDescription = 1024
)

var filesPart = regexp.MustCompile(`^files\[([0-9]+)\]$`)

// payloadAttachment is an entry of a message's attachments array.
type payloadAttachment struct {
	ID          json.RawMessage `json:"id"`
	Filename    string          `json:"filename"`
	Description string          `json:"description"`
}

func (a payloadAttachment) id() string {
	var s string
	if json.Unmarshal(a.ID, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(a.ID))
}

// readMessage reads a message body as a route got it: JSON, or multipart
// with payload_json and files[n]. It returns the message, its new files,
// and the attachments array when the body has one (nil otherwise); false
// means the body was refused, and answered.
func (s *Server) readMessage(w http.ResponseWriter, r *http.Request, where string, body []byte, edit bool) (MessageBody, []Attachment, []payloadAttachment, bool) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		b, ok := s.checkMessage(w, where, body, edit)
		var pa struct {
			Attachments *[]payloadAttachment `json:"attachments"`
		}
		_ = json.Unmarshal(body, &pa)
		switch {
		case !ok || pa.Attachments == nil:
			return b, nil, nil, ok
		case !edit && len(*pa.Attachments) > 0:
			s.violate(where, []string{"an attachments array without files[n] parts: send the files as multipart/form-data"})
			writeErr(w, 400, 50035, "Invalid Form Body")
			return b, nil, nil, false
		}
		return b, nil, *pa.Attachments, true
	}
	refuse := func(status, code int, msg string) (MessageBody, []Attachment, []payloadAttachment, bool) {
		s.violate(where, []string{msg})
		writeErr(w, status, code, msg)
		return MessageBody{}, nil, nil, false
	}
	mr := multipart.NewReader(strings.NewReader(string(body)), params["boundary"])
	var payload []byte
	files := map[string]Attachment{}
	var order []string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return refuse(400, 50035, "multipart body: "+err.Error())
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return refuse(400, 50035, "multipart part: "+err.Error())
		}
		name := p.FormName()
		switch m := filesPart.FindStringSubmatch(name); {
		case name == "payload_json":
			payload = data
		case m != nil:
			if p.FileName() == "" {
				return refuse(400, 50035, name+" has no filename in its Content-Disposition")
			}
			if _, dup := files[m[1]]; dup {
				return refuse(400, 50035, name+" is sent twice: each files[n] must be named uniquely")
			}
			if len(data) > MaxAttachmentBytes {
				s.violate(where, []string{fmt.Sprintf("%s is %d bytes, the upload limit is %d", name, len(data), MaxAttachmentBytes)})
				writeErr(w, http.StatusRequestEntityTooLarge, 40005, "Request entity too large")
				return MessageBody{}, nil, nil, false
			}
			files[m[1]] = Attachment{Filename: p.FileName(), ContentType: p.Header.Get("Content-Type"), Size: len(data), Data: data}
			order = append(order, m[1])
		default:
			return refuse(400, 50035, fmt.Sprintf("unexpected form field %q (the message goes in payload_json, files in files[n])", name))
		}
	}
	if len(order) > MaxAttachments {
		return refuse(400, 50035, fmt.Sprintf("%d files, at most %d", len(order), MaxAttachments))
	}
	if payload == nil {
		payload = []byte("{}")
	}
	var pa struct {
		Attachments *[]payloadAttachment `json:"attachments"`
	}
	if err := json.Unmarshal(payload, &pa); err != nil {
		return refuse(400, 50109, "payload_json is not JSON: "+err.Error())
	}
	var listed []payloadAttachment
	if pa.Attachments != nil {
		listed = *pa.Attachments
		for _, a := range listed {
			if utf8Len(a.Description) > MaxAttachmentDescription {
				return refuse(400, 50035, fmt.Sprintf("attachment %s description is %d characters, limit %d", a.id(), utf8Len(a.Description), MaxAttachmentDescription))
			}
			f, isNew := files[a.id()]
			if !isNew && !edit {
				return refuse(400, 50035, fmt.Sprintf("attachments lists id %s, which is no files[n] part", a.id()))
			}
			if isNew {
				f.Description = a.Description
				files[a.id()] = f
			}
		}
	}
	b, ok := s.checkMessage(w, where, payload, edit || len(order) > 0)
	if !ok {
		return b, nil, nil, false
	}
	s.mu.Lock()
	atts := make([]Attachment, 0, len(order))
	for _, n := range order {
		f := files[n]
		f.ID = s.nextID()
		f.URL = s.srv.URL + "/attachments/" + f.ID + "/" + f.Filename
		atts = append(atts, f)
	}
	s.mu.Unlock()
	if pa.Attachments == nil {
		return b, atts, nil, true
	}
	// Keep the placeholder of each new file, to match the listed entries.
	for i, n := range order {
		atts[i].Description = files[n].Description
		for j := range listed {
			if listed[j].id() == n {
				listed[j].ID = json.RawMessage(strconv.Quote(atts[i].ID))
			}
		}
	}
	return b, atts, listed, true
}

func utf8Len(s string) int { return len([]rune(s)) }

// attach applies a message's new files to m: on an edit with an
// attachments array, only the listed ones (old by id, new by placeholder)
// stay; otherwise the new ones are appended. s.mu is held.
func attach(m *Message, atts []Attachment, listed []payloadAttachment) {
	if listed == nil {
		m.Attachments = append(m.Attachments, atts...)
		return
	}
	keep := map[string]bool{}
	for _, a := range listed {
		keep[a.id()] = true
	}
	var out []Attachment
	for _, a := range append(append([]Attachment(nil), m.Attachments...), atts...) {
		if keep[a.ID] {
			out = append(out, a)
		}
	}
	m.Attachments = out
}
