// Package web is threatdesk's third adapter, after Slack and Discord: the
// pages people open in a browser. It serves the file sample drop box
// (GET/POST /samples/u/{token}: the upload page and its multipart post,
// which curl uses too), the experts' sample download (GET
// /samples/d/{token}: a ZIP encrypted with the password "infected"), and
// the case tracker under /web/ (tracker.go): the case list with filters
// and search, a case's page (SLA clocks, question, conversation, samples,
// the verified timeline) and the service report with charts drawn as
// inline SVG on the server (reportpage.go, chart.go).
//
// Nothing imports it but cmd/threatdesk, which builds a Handler with New and
// mounts each of Handler.Routes on the HTTP server with the route's own body
// cap. The domain is reached through small interfaces declared here
// (Samples, Cases), which *casework.Service implements, and who is who
// through Directory, which *bot.Bot implements (roles by the running
// config, exactly as in chat).
//
// # Signing in
//
// There are no passwords. "/experts web" in chat asks the Handler, as the
// bot's WebSignIn, for a single-use link (/web/login/{token}, ten
// minutes). Opening it (GET) changes nothing: the page says whom it signs
// in and has a Sign in button. The button's POST, refused unless its Origin
// (or Referer) is THREATDESK_PUBLIC_URL's origin and it carries the page's
// form token (bound to a nonce cookie of the browser that loaded the
// page), uses the link up, opens a session (twelve hours) and sets its id
// in an HttpOnly, SameSite=Lax cookie, Secure when THREATDESK_PUBLIC_URL is
// https (session.go). So nobody can sign someone else's browser in with
// their own link (login CSRF), and link expanders use nothing up. Tokens and session ids are random and stored as their
// SHA-256 only (migration 0015: web_login_links, web_sessions). Every
// request re-reads the session and asks the Directory who the person is
// now; signing out, or losing every role that sees cases, ends the session
// in the database. Wiring, in cmd:
//
//	h, err := web.New(web.Config{..., Pool: pool, Key: key, Cases: cases}, log, reg)
//	core.SetWebSignIn(h) // "/experts web" answers with h's links
//	h.SetDirectory(core) // h asks the bot who a signed-in person is
//
// Every form is a POST carrying the session's CSRF token (a MAC of the
// session id under the session subkey of THREATDESK_SECRET_KEY); GET pages
// change nothing; URLs carry no case data beyond a case reference (the
// search text travels in a POST body; filters are choices from fixed lists).
//
// # Pages
//
// Pages are html/template files embedded from templates/: layout.html is
// the frame; every page file defines "title" and "content" and is parsed
// over a copy of the frame (see parsePages), so a new page is a new file
// and a call of Handler.render. Every value is escaped by html/template;
// untrusted text (a case's question, a file name) is never marked safe.
// Pages work without JavaScript and load nothing from elsewhere: no
// scripts, fonts or images (charts are inline SVG, coloured by the
// stylesheet's classes); the one stylesheet is inline and allowed by its
// hash in the Content-Security-Policy that secureHeaders sets on every
// answer, with frame-ancestors 'none', nosniff, no-referrer and no-store.
//
// Clients that do not ask for HTML (curl sends Accept: */*) get the same
// sentences as text/plain.
//
// # Links
//
// Links builds the absolute URLs that chat messages carry, from
// THREATDESK_PUBLIC_URL (config.Config.PublicBase). The chat side gets them
// from cmd, never by importing this package:
//
//	links := webHandler.Links()
//	url := links.Upload(link.Token)        // link from casework's IssueUploadLink
//	url = links.Download(dl.Token)         // dl from casework's IssueDownloadLink
//	note := links.LocalNote()              // "" unless the links only work on this machine
package web
