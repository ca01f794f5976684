package discord

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/gorilla/websocket"
)

// DefaultAPIURL is Discord's REST base; DISCORD_API_URL overrides it.
const DefaultAPIURL = "https://discord.com/api/v10/"

// rewriteTransport sends the requests discordgo builds for Discord's REST
// base (package-level endpoint strings fixed at init, which we must not
// change) to the configured base instead. Gateway discovery is mapped onto
// GET {base}gateway/bot, whose URL the session then dials: the websocket
// follows the base too.
type rewriteTransport struct {
	from string   // discordgo's base, discordgo.EndpointAPI
	to   *url.URL // the configured base, ending in "/"
	next http.RoundTripper
	// global, when set, is told of a global 429 and its Retry-After:
	// discordgo's limiter does not see one (it carries no bucket headers,
	// and discordgo's 429 error keeps no headers).
	global func(wait time.Duration)
}

func (t *rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	raw := req.URL.String()
	rest, ok := strings.CutPrefix(raw, t.from)
	if !ok {
		return t.next.RoundTrip(req)
	}
	if rest == "gateway" || strings.HasPrefix(rest, "gateway?") {
		rest = "gateway/bot" + strings.TrimPrefix(rest, "gateway")
	}
	u, err := t.to.Parse(rest)
	if err != nil {
		return nil, fmt.Errorf("rewrite discord request onto the configured API base: %w", err)
	}
	r := req.Clone(req.Context())
	r.URL = u
	r.Host = u.Host
	resp, err := t.next.RoundTrip(r)
	// A global 429, or Cloudflare's ban of the address (429 with an HTML
	// page, after too many invalid requests): every route waits, for it
	// is the same address whatever the route, and each request sent
	// meanwhile prolongs the ban.
	if err == nil && t.global != nil && resp.StatusCode == http.StatusTooManyRequests &&
		(strings.EqualFold(resp.Header.Get("X-RateLimit-Global"), "true") || strings.EqualFold(resp.Header.Get("X-RateLimit-Scope"), "global") ||
			!strings.Contains(resp.Header.Get("Content-Type"), "json")) {
		wait := time.Second
		if secs, perr := strconv.ParseFloat(resp.Header.Get("Retry-After"), 64); perr == nil && secs > 0 {
			wait = time.Duration(secs * float64(time.Second))
		}
		t.global(min(wait, time.Hour))
	}
	return resp, err
}

// newHTTPClient returns the client every discordgo session of an adapter
// uses; global (may be nil) is told of Discord's global rate limits.
func newHTTPClient(base *url.URL, timeout time.Duration, global func(time.Duration)) *http.Client {
	next := http.DefaultTransport.(*http.Transport).Clone()
	next.MaxIdleConnsPerHost = 32
	return &http.Client{
		Timeout:   timeout,
		Transport: &rewriteTransport{from: discordgo.EndpointAPI, to: base, next: next, global: global},
	}
}

// newDialer returns the session's own websocket dialer (never the shared
// websocket.DefaultDialer); it dials whatever URL discovery at the configured
// base returned.
func newDialer() *websocket.Dialer {
	return &websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: 15 * time.Second,
	}
}
