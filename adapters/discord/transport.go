package discord

import (
	"fmt"
	"net/http"
	"net/url"
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
	return t.next.RoundTrip(r)
}

// newHTTPClient returns the client every discordgo session of an adapter uses.
func newHTTPClient(base *url.URL, timeout time.Duration) *http.Client {
	next := http.DefaultTransport.(*http.Transport).Clone()
	next.MaxIdleConnsPerHost = 32
	return &http.Client{
		Timeout:   timeout,
		Transport: &rewriteTransport{from: discordgo.EndpointAPI, to: base, next: next},
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
