package bot

import (
	"net/url"
	"strings"
)

// Alert links. An alert's alertWebUrl (and so an incident's link and a case
// subject's link) comes from whoever posted the alert: any holder of an
// ingest token can put any URL there. It becomes a link in chat only when it
// points at one of Microsoft's security portals; anything else is shown as
// defanged text ("hxxps://example[.]com/…"), which no chat client turns into
// a link, so a forwarded "targeted attack notification" cannot carry a
// phishing link.

// portalHosts are Microsoft's security portals, by exact host name: where
// Defender and Graph alerts link to (alertWebUrl, incidentWebUrl), in the
// commercial and US government clouds. Other microsoft.com hosts are not
// links: login.microsoft.com and the like would carry a consent-phishing
// URL as readily as any other.
var portalHosts = map[string]bool{
	"security.microsoft.com":       true,
	"securitycenter.microsoft.com": true,
	"securitycenter.windows.com":   true,
	"security.microsoft.us":        true,
	"securitycenter.microsoft.us":  true,
	"portal.azure.com":             true, // only its security blades (portalLink)
}

// portalLink returns raw (normalised) and true when it is an https URL on a
// Microsoft security portal host (portalHosts), with no user information
// and no explicit port.
func portalLink(raw string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" || u.Opaque != "" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if !portalHosts[host] {
		return "", false
	}
	if host == "portal.azure.com" && !strings.HasPrefix(u.Fragment, "blade/Microsoft_Azure_Security") {
		// The Azure portal's other blades include one-click deployments
		// of a template named in the link.
		return "", false
	}
	return u.String(), true
}

// defang rewrites a URL so that no client makes it clickable, the way
// security teams share indicators: the scheme becomes hxxp(s) and every dot
// of the host is bracketed. It is cut to a readable length.
func defang(raw string) string {
	s := strings.TrimSpace(raw)
	low := strings.ToLower(s)
	switch {
	case strings.HasPrefix(low, "https://"):
		s = "hxxps://" + s[len("https://"):]
	case strings.HasPrefix(low, "http://"):
		s = "hxxp://" + s[len("http://"):]
	}
	s = strings.ReplaceAll(s, ".", "[.]")
	s = strings.ReplaceAll(s, "://", "[://]")
	return cut(s, maxListLineRunes*2)
}

// refang undoes defanging, this bot's and the usual forms of threat
// reports (hxxp(s) and [://] in the scheme; [.], (.), {.}, [dot] and [:] in
// the host; [.] in the path too, as defang writes it), so that an indicator
// copied from a card or a report is taken as it is. The path's other text
// is left as written (a "(.)" there is text).
func refang(s string) string {
	scheme, rest, hasScheme := "", s, false
	for _, sep := range []string{"[://]", "[:]//", "://"} {
		if i := strings.Index(s, sep); i > 0 && !strings.ContainsAny(s[:i], "/?#") {
			scheme, rest, hasScheme = s[:i], s[i+len(sep):], true
			break
		}
	}
	if hasScheme {
		if low := strings.ToLower(scheme); low == "hxxp" || low == "hxxps" {
			scheme = "http" + scheme[4:]
		}
	}
	host, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host, tail = rest[:i], rest[i:]
	}
	host = refanger.Replace(host)
	tail = strings.ReplaceAll(tail, "[.]", ".") // defang brackets every dot, the path's too
	if hasScheme {
		return scheme + "://" + host + tail
	}
	return host + tail
}

var refanger = strings.NewReplacer("[://]", "://", "[:]", ":", "[.]", ".", "(.)", ".", "{.}", ".", "[dot]", ".", "(dot)", ".")

// alertLink renders an alert's link: label linked to raw when raw is a
// portal URL; otherwise a note and the address as defanged, untrusted text.
func alertLink(label, raw string) []Span {
	if u, ok := portalLink(raw); ok {
		return []Span{L(label, u)}
	}
	return []Span{T("address (not a Microsoft portal, so not linked): "), U(defang(oneLine(raw)))}
}

// PortalLink returns raw (normalised) and true when it is an https URL on
// one of Microsoft's security portals: the rule by which an alert's link
// becomes a link in chat, for the other adapters (the web pages) to follow.
func PortalLink(raw string) (string, bool) { return portalLink(raw) }
