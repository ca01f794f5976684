package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed templates
var templateFS embed.FS

// page is a parsed page: the frame with the page's "title" and "content".
type page = *template.Template

// pages holds the parsed pages by file name (without .html), the
// stylesheet, and the Content-Security-Policy that allows it.
type pages struct {
	byName map[string]page
	css    template.CSS
	csp    string
}

// view is what the frame renders: the stylesheet, whether the page reports
// a refusal (styled as such), and the page's own data. Case tracker pages
// also have their header (Nav: who is signed in, the links, sign out) and
// a wide layout.
type view struct {
	CSS  template.CSS
	Bad  bool
	Nav  *navView
	Wide bool
	// Referrer is the page's referrer policy when not "no-referrer" (the
	// sign-in page's: its form's POST must show where it comes from).
	Referrer string
	Page     any
}

// parsePages parses templates/layout.html and every other page file over a
// copy of it. The stylesheet is inlined and allowed by its SHA-256 in the
// policy, so no page loads anything from anywhere.
func parsePages() (*pages, error) {
	css, err := fs.ReadFile(templateFS, "templates/style.css")
	if err != nil {
		return nil, fmt.Errorf("web: read the stylesheet: %w", err)
	}
	style := strings.TrimSpace(string(css))
	sum := sha256.Sum256([]byte(style))
	p := &pages{
		byName: map[string]page{},
		// The stylesheet is ours, embedded at build time: not user text.
		css: template.CSS(style), //nolint:gosec // constant, embedded
		csp: "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
			"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	}
	layout, err := template.ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse the layout: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: list the pages: %w", err)
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := layout.Clone()
		if err != nil {
			return nil, fmt.Errorf("web: page %s: %w", name, err)
		}
		if t, err = t.ParseFS(templateFS, n); err != nil {
			return nil, fmt.Errorf("web: parse page %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// secureHeaders sets the headers every answer carries: a strict
// Content-Security-Policy (csp; for non-HTML answers "default-src 'none';
// sandbox"), no sniffing, no referrer (links carry tokens), no framing, no
// caching (pages show case data and hold tokens in their URL).
func secureHeaders(h http.Header, csp string) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// strictCSP is the policy of answers that are not HTML pages.
const strictCSP = "default-src 'none'; sandbox; frame-ancestors 'none'"

// wantsHTML reports whether the client asked for a web page (browsers
// send Accept: text/html, ...; curl sends */*).
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// render writes page name with data and status, with the security headers.
func (h *Handler) render(w http.ResponseWriter, status int, name string, bad bool, data any) {
	h.renderView(w, status, name, view{CSS: h.pages.css, Bad: bad, Page: data})
}

// renderView writes page name with the frame's data v.
func (h *Handler) renderView(w http.ResponseWriter, status int, name string, v view) {
	v.Bad = v.Bad || status >= 400
	t, ok := h.pages.byName[name]
	if !ok {
		h.log.Error("no such page", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.Error("render page", "page", name, "err", err)
		secureHeaders(w.Header(), strictCSP)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	secureHeaders(w.Header(), h.pages.csp)
	if v.Referrer != "" {
		w.Header().Set("Referrer-Policy", v.Referrer)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// message is the data of message.html.
type message struct {
	Title string
	Lines []string
}

// say answers with a message: an HTML page for browsers, the same
// sentences as plain text for everyone else (curl).
func (h *Handler) say(w http.ResponseWriter, r *http.Request, status int, m message) {
	if wantsHTML(r) {
		h.render(w, status, "message", status >= 400, m)
		return
	}
	secureHeaders(w.Header(), strictCSP)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, "%s\n", m.Title)
	for _, l := range m.Lines {
		_, _ = fmt.Fprintf(w, "%s\n", l)
	}
}
