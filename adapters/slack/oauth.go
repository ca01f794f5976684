package slack

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/outbox"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Add to Slack (OAuth v2, https://docs.slack.dev/authentication/installing-with-oauth).
//
// An admin's "/experts install-link <org>" asks InstallLink for a link to
// PublicURL + /slack/install?state=S. S names the org and who asked, sealed
// (secrets.PurposeSlackInstallSeal: the customer's admin who opens the link
// cannot read the provider admin's id in it), signed
// (secrets.PurposeSlackInstall), and expires after InstallTTL (1 h). The
// install page checks S, sets a cookie binding the browser to it, and
// redirects to the authorize page on SLACK_API_URL's host
// (/oauth/v2/authorize) with the bot scopes and the redirect URI
// PublicURL + /slack/oauth/callback. The callback checks S again (signature,
// expiry, the same browser), uses it up (slack_oauth_states: a second use is
// refused on any replica), exchanges the code with oauth.v2.access, and
// stores the workspace's bot token sealed (installs.go) with, in the same
// transaction, the desk's notice. An org whose config names its Slack team
// accepts an install in that team only.

// BotScopes are the bot scopes an install asks for (manifest.yaml's).
var BotScopes = []string{"commands", "chat:write", "channels:history", "groups:history", "im:history", "users:read",
	"files:write", "im:write", "files:read", "channels:read", "groups:read", "pins:write"}

// OrgDirectory says where the running config places an org (the bot).
type OrgDirectory interface {
	OrgPlace(p bot.Platform, org string) (bot.OrgPlace, bool)
}

// installState is what a signed state says.
type installState struct {
	Org string `json:"org"`
	// By is who asked for the link ("slack:U0ADMIN1").
	By string `json:"by"`
	// Nonce makes every link different.
	Nonce string `json:"n"`
}

const installCookie = "threatdesk_slack_install"

// oauthEnabled reports whether Add to Slack is set up.
func (a *Adapter) oauthEnabled() bool { return a.cfg.ClientID != "" && a.installs != nil }

// InstallLink implements bot.Installer: a signed, single-use link that
// installs the app for org.
func (a *Adapter) InstallLink(_ context.Context, org string, by bot.User) (bot.InstallLink, error) {
	if !a.oauthEnabled() {
		return bot.InstallLink{}, errors.New("add to slack is not set up (SLACK_CLIENT_ID)")
	}
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return bot.InstallLink{}, fmt.Errorf("install link: %w", err)
	}
	payload, err := json.Marshal(installState{Org: org, By: string(by.Platform) + ":" + by.ID, Nonce: hex.EncodeToString(nonce)})
	if err != nil {
		return bot.InstallLink{}, fmt.Errorf("install link: %w", err)
	}
	sealed, err := a.cfg.Key.Seal(secrets.PurposeSlackInstallSeal, payload, nil)
	if err != nil {
		return bot.InstallLink{}, fmt.Errorf("install link: %w", err)
	}
	exp := time.Now().Add(a.cfg.InstallTTL)
	state := a.cfg.Key.SignToken(secrets.PurposeSlackInstall, sealed, exp)
	link := bot.InstallLink{URL: a.cfg.PublicURL + "/slack/install?" + url.Values{"state": {state}}.Encode(), ExpiresAt: exp}
	if a.cfg.PublicLocal {
		link.Note = "THREATDESK_PUBLIC_URL is not set, so this link only works on the machine threatdesk runs on; Slack must also be able to send the browser back to it."
	}
	return link, nil
}

// InstallHandler serves GET /slack/install and GET /slack/oauth/callback.
func (a *Adapter) InstallHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slack/install", a.serveInstall)
	mux.HandleFunc("GET /slack/oauth/callback", a.serveOAuthCallback)
	return mux
}

// redirectURI is where Slack sends the browser back.
func (a *Adapter) redirectURI() string { return a.cfg.PublicURL + "/slack/oauth/callback" }

// authorizeURL is Slack's authorize page: on SLACK_API_URL's host.
func (a *Adapter) authorizeURL() string {
	u, err := url.Parse(a.cfg.APIURL)
	if err != nil {
		return "https://slack.com/oauth/v2/authorize"
	}
	return u.Scheme + "://" + u.Host + "/oauth/v2/authorize"
}

// Installed implements bot.Installer: the workspaces that added the app.
func (a *Adapter) Installed(ctx context.Context) ([]bot.Installed, error) {
	if !a.oauthEnabled() {
		return nil, nil
	}
	list, err := a.installs.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]bot.Installed, 0, len(list)+1)
	if own := a.ownTeam(ctx); own != "" {
		out = append(out, bot.Installed{Workspace: own, Own: true})
	}
	for _, in := range list {
		out = append(out, bot.Installed{Workspace: in.Team, WorkspaceName: in.TeamName, Org: in.Org, InstalledBy: in.InstalledBy,
			InstalledAt: in.InstalledAt, Active: in.Active, InactiveAt: in.InactiveAt, InactiveWhy: in.InactiveWhy})
	}
	return out, nil
}

// checkState verifies a state's signature and expiry.
func (a *Adapter) checkState(state string) (installState, error) {
	var st installState
	sealed, err := a.cfg.Key.VerifyToken(secrets.PurposeSlackInstall, state, time.Now())
	if err != nil {
		return st, err
	}
	raw, err := a.cfg.Key.Open(secrets.PurposeSlackInstallSeal, sealed, nil)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(raw, &st); err != nil || st.Org == "" {
		return st, secrets.ErrOpen
	}
	return st, nil
}

func stateHash(state string) []byte {
	h := sha256.Sum256([]byte(state))
	return h[:]
}

func (a *Adapter) serveInstall(w http.ResponseWriter, r *http.Request) {
	if !a.oauthEnabled() {
		installPage(w, http.StatusNotFound, "Add to Slack is not set up", "This threatdesk has no Slack app credentials (SLACK_CLIENT_ID).")
		return
	}
	state := r.URL.Query().Get("state")
	st, err := a.checkState(state)
	if err != nil {
		a.metrics.in("http", "install", "refused")
		a.log.Warn("install link refused", "err", err)
		installPage(w, http.StatusBadRequest, "This install link does not work", stateProblem(err))
		return
	}
	if used, err := a.stateUsed(r.Context(), state); err != nil {
		a.log.Error("install link: could not check the state", "err", err)
		installPage(w, http.StatusServiceUnavailable, "Try again in a minute", "threatdesk could not check this link just now.")
		return
	} else if used {
		installPage(w, http.StatusBadRequest, "This install link was used already", "An install link works once: ask your threatdesk contact for a new one.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: installCookie, Value: hex.EncodeToString(stateHash(state)), Path: a.cookiePath(),
		MaxAge: int(a.cfg.InstallTTL / time.Second), HttpOnly: true, Secure: strings.HasPrefix(a.cfg.PublicURL, "https://"),
		SameSite: http.SameSiteLaxMode})
	q := url.Values{"client_id": {a.cfg.ClientID}, "scope": {strings.Join(BotScopes, ",")},
		"redirect_uri": {a.redirectURI()}, "state": {state}}
	if place, ok := a.cfg.Orgs.OrgPlace(bot.Slack, st.Org); ok && place.Workspace != "" {
		q.Set("team", place.Workspace) // Slack preselects the org's workspace
	}
	a.metrics.in("http", "install", "redirected")
	http.Redirect(w, r, a.authorizeURL()+"?"+q.Encode(), http.StatusFound)
}

// cookiePath is /slack/ under THREATDESK_PUBLIC_URL's path (a reverse
// proxy may serve threatdesk under a prefix).
func (a *Adapter) cookiePath() string {
	prefix := ""
	if u, err := url.Parse(a.cfg.PublicURL); err == nil {
		prefix = strings.TrimRight(u.Path, "/")
	}
	return prefix + "/slack/"
}

func stateProblem(err error) string {
	if errors.Is(err, secrets.ErrExpired) {
		return "The link has expired (install links work for an hour): ask your threatdesk contact for a new one."
	}
	return "The link is not one threatdesk made, or it was changed: ask your threatdesk contact for a new one."
}

// stateUsed reports whether state's link was used already.
func (a *Adapter) stateUsed(ctx context.Context, state string) (bool, error) {
	var used bool
	err := a.cfg.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM slack_oauth_states WHERE state_hash = $1)`, stateHash(state)).Scan(&used)
	return used, err
}

func (a *Adapter) serveOAuthCallback(w http.ResponseWriter, r *http.Request) {
	ctx := requestCtx(r)
	if !a.oauthEnabled() {
		installPage(w, http.StatusNotFound, "Add to Slack is not set up", "This threatdesk has no Slack app credentials (SLACK_CLIENT_ID).")
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	st, err := a.checkState(state)
	if err != nil {
		a.metrics.in("http", "install", "refused")
		a.log.Warn("Slack OAuth callback refused: bad state", "err", err)
		installPage(w, http.StatusBadRequest, "This install did not come from a threatdesk link", stateProblem(err))
		return
	}
	c, err := r.Cookie(installCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(hex.EncodeToString(stateHash(state)))) != 1 {
		a.metrics.in("http", "install", "refused")
		a.log.Warn("Slack OAuth callback refused: the browser did not open the install link", "org", st.Org)
		installPage(w, http.StatusBadRequest, "Open the install link in this browser",
			"The install must start from the install link, in the same browser: open the link again.")
		return
	}
	if e := q.Get("error"); e != "" {
		installPage(w, http.StatusOK, "threatdesk was not installed", "The install was cancelled in Slack ("+e+"). The link still works until it expires.")
		return
	}
	// The state is used up before the code is exchanged: a second callback
	// with it is refused, on any replica.
	tag, err := a.cfg.Pool.Exec(ctx, `
INSERT INTO slack_oauth_states (state_hash, org_id, used_at, expires_at) VALUES ($1, $2, now(), now() + $3::interval)
ON CONFLICT (state_hash) DO NOTHING`, stateHash(state), st.Org, fmt.Sprintf("%d seconds", int(a.cfg.InstallTTL/time.Second)))
	if err != nil {
		a.log.Error("Slack OAuth callback: could not record the state", "err", err)
		installPage(w, http.StatusServiceUnavailable, "Try again in a minute", "threatdesk could not record this install just now: open the install link again.")
		return
	}
	if tag.RowsAffected() == 0 {
		a.metrics.in("http", "install", "refused")
		a.log.Warn("Slack OAuth callback refused: the install link was used already", "org", st.Org)
		installPage(w, http.StatusBadRequest, "This install link was used already", "An install link works once: ask your threatdesk contact for a new one.")
		return
	}
	_, _ = a.cfg.Pool.Exec(ctx, `DELETE FROM slack_oauth_states WHERE expires_at < now() - interval '1 day'`)
	place, ok := a.cfg.Orgs.OrgPlace(bot.Slack, st.Org)
	if !ok {
		installPage(w, http.StatusBadRequest, "threatdesk was not installed", "The org this link was made for is no longer configured: ask your threatdesk contact.")
		return
	}
	if place.Workspace == "" {
		// Any workspace would do, and be linked to this org for good.
		installPage(w, http.StatusBadRequest, "threatdesk was not installed", "The org this link was made for has no Slack workspace in threatdesk's configuration: ask your threatdesk contact.")
		return
	}
	cctx, cancel := a.callCtx(ctx)
	defer cancel()
	res, err := slack.GetOAuthV2ResponseContext(cctx, a.cfg.HTTPClient, a.cfg.ClientID, a.cfg.ClientSecret.Value(), q.Get("code"),
		a.redirectURI(), slack.OAuthOptionAPIURL(a.cfg.APIURL))
	a.metrics.call("oauth.v2.access", err)
	if err != nil {
		a.log.Warn("Slack OAuth: the code exchange failed", "org", st.Org, "err", redactErr(err))
		installPage(w, http.StatusBadGateway, "threatdesk was not installed", "Slack did not accept the install ("+slackCode(err)+"): open a new install link.")
		return
	}
	if res.TokenType != "bot" || res.AccessToken == "" {
		installPage(w, http.StatusBadGateway, "threatdesk was not installed", "Slack's answer had no bot token.")
		return
	}
	token := secrets.String(res.AccessToken)
	if res.IsEnterpriseInstall || res.Team.ID == "" {
		// Installed across an Enterprise Grid org: refused, and given back
		// (no customer install of threatdesk's holds an org-wide token),
		// unless it is the desk's own.
		if token.Value() != a.cfg.BotToken.Value() {
			a.revoke(ctx, token)
		}
		a.log.Warn("Slack OAuth: installed across an Enterprise Grid org; refused", "org", st.Org, "enterprise", res.Enterprise.ID)
		installPage(w, http.StatusBadRequest, "threatdesk was not installed",
			"threatdesk is installed in one workspace, not across an Enterprise Grid organisation: open a new link and choose "+place.Name+"'s workspace.")
		return
	}
	if place.Workspace != "" && !strings.EqualFold(place.Workspace, res.Team.ID) {
		a.revokeUnkept(ctx, res.Team.ID, token)
		a.log.Warn("Slack OAuth: installed in another workspace than the org's; refused", "org", st.Org, "team", res.Team.ID, "want", place.Workspace)
		installPage(w, http.StatusForbidden, "threatdesk was not installed",
			"This link is for "+place.Name+"'s Slack workspace ("+place.Workspace+"), and it was approved in "+res.Team.ID+". Open a new link and choose that workspace.")
		return
	}
	if own := a.ownTeam(ctx); own != "" && strings.EqualFold(own, res.Team.ID) {
		// Never revoked: a reinstall answers the installed bot token, here
		// SLACK_BOT_TOKEN itself.
		installPage(w, http.StatusBadRequest, "threatdesk was not installed", "This is the provider's own workspace: it uses SLACK_BOT_TOKEN and needs no install link.")
		return
	}
	prev, linked, err := a.installs.Get(ctx, res.Team.ID)
	if err != nil {
		a.log.Error("Slack OAuth: could not read the workspace's installation", "team", res.Team.ID, "err", err)
		installPage(w, http.StatusServiceUnavailable, "threatdesk was not installed", "threatdesk could not check this workspace just now: open a new install link in a few minutes.")
		return
	}
	if linked && prev.Active && prev.Org != st.Org {
		a.log.Warn("Slack OAuth: the workspace is linked to another org; refused", "org", st.Org, "team", res.Team.ID, "linked", prev.Org)
		installPage(w, http.StatusForbidden, "threatdesk was not installed",
			"This Slack workspace is already linked to another organisation in threatdesk: ask your threatdesk contact.")
		return
	}
	in := Installation{Team: res.Team.ID, TeamName: res.Team.Name, Org: st.Org, AppID: res.AppID, BotUserID: res.BotUserID,
		Scope: res.Scope, InstalledBy: res.AuthedUser.ID, LinkBy: st.By, InstalledAt: time.Now(), Active: true, token: token}
	notice := bot.WorkspaceNotice(bot.WorkspaceChange{Kind: bot.WorkspaceInstalled, Platform: bot.Slack, Workspace: in.Team,
		WorkspaceName: in.TeamName, Org: in.Org, By: in.InstalledBy, LinkBy: in.LinkBy, At: in.InstalledAt})
	if err := a.installs.save(ctx, in, func(tx pgx.Tx) error {
		_, err := outbox.Append(ctx, tx, notice)
		return err
	}); err != nil {
		a.log.Error("Slack OAuth: could not store the installation", "team", in.Team, "err", err)
		installPage(w, http.StatusServiceUnavailable, "threatdesk was not installed", "threatdesk could not store the install: ask your threatdesk contact for a new link.")
		return
	}
	a.clients.forget(in.Team)
	a.metrics.in("http", "install", "installed")
	a.log.Info("Slack workspace installed threatdesk", "team", in.Team, "org", in.Org)
	installDone(w, place.Name, teamName(in))
}

// revokeUnkept gives back (auth.revoke) the token of an install
// threatdesk refused, unless the app was installed in team already: Slack
// answers a reinstall with the bot token in use, and revoking it would
// remove the app from the provider's own workspace (SLACK_BOT_TOKEN) or a
// customer's. When that cannot be told (the installations not readable),
// it is kept.
func (a *Adapter) revokeUnkept(ctx context.Context, team string, token secrets.String) {
	if token.Value() == a.cfg.BotToken.Value() {
		return // the provider's own workspace, reinstalled
	}
	if own := a.ownTeam(ctx); own != "" && strings.EqualFold(own, team) {
		return
	}
	if in, ok, err := a.installs.Get(ctx, team); err != nil || (ok && in.Active) {
		return
	}
	a.revoke(ctx, token)
}

// revoke gives back a token threatdesk will not keep (auth.revoke).
func (a *Adapter) revoke(ctx context.Context, token secrets.String) {
	cctx, cancel := a.callCtx(ctx)
	defer cancel()
	api := slack.New(token.Value(), slack.OptionAPIURL(a.cfg.APIURL), slack.OptionHTTPClient(a.cfg.HTTPClient))
	_, err := api.SendAuthRevokeContext(cctx, "")
	a.metrics.call("auth.revoke", err)
}

// slackCode is Slack's error code in err, or "no answer".
func slackCode(err error) string {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	return "no answer"
}

// redactErr keeps a token-free description of err (Slack's code).
func redactErr(err error) string { return slackCode(err) }

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>threatdesk: {{.Title}}</title></head><body>
<h1>{{.Title}}</h1>
{{range .Lines}}<p>{{.}}</p>
{{end}}</body></html>`))

func writePage(w http.ResponseWriter, status int, title string, lines ...string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	// Plain text pages: nothing to load, never framed.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, map[string]any{"Title": title, "Lines": lines})
}

func installPage(w http.ResponseWriter, status int, title, line string) {
	writePage(w, status, title, line)
}

// installDone is the page after a good install: what to do next.
func installDone(w http.ResponseWriter, org, workspace string) {
	writePage(w, http.StatusOK, "threatdesk is installed",
		"threatdesk is now in the Slack workspace "+workspace+", for "+org+".",
		"Next: invite @threatdesk to your SOC channel (/invite @threatdesk in the channel), and tell your threatdesk contact the channel's id if they do not have it yet.",
		"Then run /experts help in that channel to see what you can ask.")
}

// uninstallEvent handles app_uninstalled and tokens_revoked: the workspace's
// installation becomes inactive (nothing more is sent there) and the admins
// on the desk are told, once.
func (a *Adapter) uninstallEvent(ctx context.Context, transport string, oe outerEvent, typ string) error {
	team := oe.TeamID
	if a.installs == nil || team == "" {
		a.metrics.in(transport, "event", "ignored")
		return nil
	}
	if typ == "tokens_revoked" {
		var ev struct {
			Tokens struct {
				Bot []string `json:"bot"`
			} `json:"tokens"`
		}
		if err := json.Unmarshal(oe.Event, &ev); err != nil || len(ev.Tokens.Bot) == 0 {
			a.metrics.in(transport, "event", "ignored") // only user tokens: the bot's still works
			return nil
		}
	}
	var occurred time.Time
	if oe.EventTime > 0 {
		occurred = time.Unix(oe.EventTime, 0)
	}
	changed, err := a.installs.deactivate(ctx, team, typ, time.Now(), occurred, func(tx pgx.Tx, in Installation) error {
		_, err := outbox.Append(ctx, tx, bot.WorkspaceNotice(bot.WorkspaceChange{Kind: bot.WorkspaceUninstalled, Platform: bot.Slack,
			Workspace: in.Team, WorkspaceName: in.TeamName, Org: in.Org, Reason: typ, At: in.InactiveAt}))
		return err
	})
	if err != nil {
		a.metrics.in(transport, "event", "unstored")
		return fmt.Errorf("%s of workspace %s: %w", typ, team, err)
	}
	a.clients.forget(team)
	if changed {
		a.log.Info("Slack workspace removed threatdesk", "team", team, "why", typ)
	}
	a.metrics.in(transport, "event", "handled")
	return nil
}
