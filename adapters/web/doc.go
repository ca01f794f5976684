// Package web is threatdesk's third adapter, after Slack and Discord: the
// pages people open in a browser. Today it serves the file sample drop box
// (GET/POST /samples/u/{token}: the upload page and its multipart post,
// which curl uses too) and the experts' sample download (GET
// /samples/d/{token}: a ZIP encrypted with the password "infected"); the
// web tracker (sign-in links, sessions, case pages) is meant to join it.
//
// Nothing imports it but cmd/threatdesk, which builds a Handler with New and
// mounts each of Handler.Routes on the HTTP server with the route's own body
// cap. The domain is reached through small interfaces declared here
// (Samples), which *casework.Service implements.
//
// # Pages
//
// Pages are html/template files embedded from templates/: layout.html is
// the frame; every page file defines "title" and "content" and is parsed
// over a copy of the frame (see parsePages), so a new page is a new file
// and a call of Handler.render. Every value is escaped by html/template;
// untrusted text (a case's question, a file name) is never marked safe.
// Pages work without JavaScript and load nothing from elsewhere: no
// scripts, fonts or images; the one stylesheet is inline and allowed by its
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
