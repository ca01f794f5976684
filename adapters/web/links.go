package web

import (
	"fmt"
	"net/url"
	"strings"
)

// Paths of the routes that links point to.
const (
	// UploadPath is followed by an upload link's token.
	UploadPath = "/samples/u/"
	// DownloadPath is followed by a download link's token.
	DownloadPath = "/samples/d/"
	// TrackerPath is the case tracker's case list; its other pages are
	// under it.
	TrackerPath = "/web/"
	// SignInPath is followed by a sign-in link's token.
	SignInPath = "/web/login/"
)

// Links builds absolute URLs of threatdesk's pages from the public base
// URL. The zero Links is not usable; get one from NewLinks.
type Links struct {
	base  string
	local bool
	// path is the base URL's path ("" or "/threatdesk"): pages link to
	// each other under it, as the browser sees them.
	path string
	// secure is true for an https base: cookies are Secure.
	secure bool
	// origin is the base URL's origin ("https://threatdesk.example.com"),
	// what a browser sends as Origin from threatdesk's pages.
	origin string
}

// NewLinks returns Links under base (THREATDESK_PUBLIC_URL, or the local
// fallback of config.Config.PublicBase, with local set).
//
//	links, err := web.NewLinks(cfg.PublicBase())
func NewLinks(base string, local bool) (Links, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return Links{}, fmt.Errorf("web: the public base URL %q must be an absolute http(s) URL without query or fragment", base)
	}
	return Links{base: strings.TrimRight(base, "/"), local: local, path: strings.TrimRight(u.EscapedPath(), "/"), secure: u.Scheme == "https",
		origin: originOf(u)}, nil
}

// originOf is the origin of an http(s) URL as browsers serialize it in
// the Origin header: lower-case scheme and host, without the scheme's
// default port; "" for any other URL.
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || u.User != nil {
		return ""
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port == "" || (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		return scheme + "://" + host
	}
	return scheme + "://" + host + ":" + port
}

// Base is the base URL, without a trailing slash.
func (l Links) Base() string { return l.base }

// Local reports whether the links only work on the machine threatdesk runs
// on (THREATDESK_PUBLIC_URL is unset).
func (l Links) Local() bool { return l.local }

// LocalNote is the sentence to post with a link when Local, else "".
func (l Links) LocalNote() string {
	if !l.local {
		return ""
	}
	return "This link only works on the machine threatdesk runs on: THREATDESK_PUBLIC_URL is not set."
}

// Upload is the URL of an upload link.
//
//	url := links.Upload(link.Token) // https://threatdesk.example.com/samples/u/<token>
func (l Links) Upload(token string) string { return l.base + UploadPath + url.PathEscape(token) }

// Download is the URL of a download link.
//
//	url := links.Download(dl.Token) // https://threatdesk.example.com/samples/d/<token>
func (l Links) Download(token string) string { return l.base + DownloadPath + url.PathEscape(token) }

// SignIn is the URL of a sign-in link to the case tracker.
//
//	url := links.SignIn(token) // https://threatdesk.example.com/web/login/<token>
func (l Links) SignIn(token string) string { return l.base + SignInPath + url.PathEscape(token) }

// Tracker is the URL of the case tracker's case list.
func (l Links) Tracker() string { return l.base + TrackerPath }

// page is the path of a page of threatdesk (p starts with "/") as the
// browser sees it: under the base URL's path.
func (l Links) page(p string) string { return l.path + p }
