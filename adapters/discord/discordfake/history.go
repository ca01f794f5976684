package discordfake

import (
	"net/http"
	"slices"
	"strconv"
)

// getMessages is GET /channels/{channel}/messages
// (https://discord.com/developers/docs/resources/message#get-channel-messages):
// at most limit (1-100, default 50) messages around, before or after a
// message id (one of them), or the newest, listed newest first. after
// gives the messages right after the id (the oldest of those newer).
func (s *Server) getMessages(w http.ResponseWriter, r *http.Request, _ []byte) {
	ch := r.PathValue("channel")
	if _, ok := s.Channel(ch); !ok {
		writeErr(w, 404, 10003, "Unknown Channel")
		return
	}
	q := r.URL.Query()
	limit := 50
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			s.violate("GET /channels/"+ch+"/messages", []string{"limit " + l + " is not 1-100"})
			writeFormErr(w, []string{"limit must be 1-100"})
			return
		}
		limit = n
	}
	set := 0
	for _, k := range []string{"around", "before", "after"} {
		if q.Has(k) {
			set++
		}
	}
	if set > 1 {
		s.violate("GET /channels/"+ch+"/messages", []string{"around, before and after are mutually exclusive"})
		writeErr(w, 400, 50035, "Invalid Form Body")
		return
	}
	id := func(k string) (int64, bool) {
		n, err := strconv.ParseInt(q.Get(k), 10, 64)
		return n, err == nil
	}
	all := s.Messages(ch) // oldest first
	num := func(m Message) int64 { n, _ := strconv.ParseInt(m.ID, 10, 64); return n }
	var page []Message
	switch {
	case q.Has("after"):
		a, ok := id("after")
		if !ok {
			writeFormErr(w, []string{"after is not a snowflake"})
			return
		}
		for _, m := range all {
			if num(m) > a && len(page) < limit {
				page = append(page, m)
			}
		}
		slices.Reverse(page)
	case q.Has("before"):
		b, ok := id("before")
		if !ok {
			writeFormErr(w, []string{"before is not a snowflake"})
			return
		}
		for i := len(all) - 1; i >= 0 && len(page) < limit; i-- {
			if num(all[i]) < b {
				page = append(page, all[i])
			}
		}
	case q.Has("around"):
		s.violate("GET /channels/"+ch+"/messages", []string{"around is not served by the fake"})
		writeErr(w, 400, 50035, "Invalid Form Body")
		return
	default:
		for i := len(all) - 1; i >= 0 && len(page) < limit; i-- {
			page = append(page, all[i])
		}
	}
	out := make([]map[string]any, 0, len(page))
	for _, m := range page {
		out = append(out, messageObject(m))
	}
	writeJSON(w, 200, out)
}
