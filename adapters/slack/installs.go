package slack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/slack-go/slack"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// Many workspaces. The provider's own workspace (the desk's) is reached with
// SLACK_BOT_TOKEN; each customer workspace that added the app through Add to
// Slack (oauth.go) has a bot token of its own, kept in slack_installations
// (migrations/0020) sealed with AES-256-GCM under a subkey of
// THREATDESK_SECRET_KEY (secrets.PurposeSlackToken), the team id as
// associated data. Every Web API call picks its token by the team id of the
// workspace it is about: a bot.Dest's or bot.Ref's Workspace, an event's
// team_id. A token is never logged, put in an error or a metric, or stored
// in clear.

// Installation is one workspace that added the app.
type Installation struct {
	Team, TeamName string
	// Org is the org whose install link was used.
	Org       string
	AppID     string
	BotUserID string
	Scope     string
	// InstalledBy is the Slack user who approved; LinkBy who asked for the
	// link ("slack:U0ADMIN1").
	InstalledBy, LinkBy string
	InstalledAt         time.Time
	// Active is false once the workspace uninstalled the app or revoked
	// its token (InactiveWhy: app_uninstalled, tokens_revoked).
	Active      bool
	InactiveAt  time.Time
	InactiveWhy string
	// token is the bot token; it never prints.
	token secrets.String
}

// Installations is the store of the workspaces that added the app.
type Installations struct {
	pool *pgxpool.Pool
	key  *secrets.Key
}

// NewInstallations returns the store on pool; tokens are sealed with key.
func NewInstallations(pool *pgxpool.Pool, key *secrets.Key) (*Installations, error) {
	if pool == nil || key == nil {
		return nil, errors.New("slack installations: a database pool and the secret key are required")
	}
	return &Installations{pool: pool, key: key}, nil
}

func tokenAAD(team string) []byte { return []byte("slack-team:" + team) }

// save stores in (active) with its token, replacing an earlier install of
// the team, and runs also in the same transaction (the desk's notice).
func (s *Installations) save(ctx context.Context, in Installation, also func(pgx.Tx) error) error {
	sealed, err := s.key.Seal(secrets.PurposeSlackToken, []byte(in.token.Value()), tokenAAD(in.Team))
	if err != nil {
		return fmt.Errorf("seal the token of workspace %s: %w", in.Team, err)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
INSERT INTO slack_installations (team_id, team_name, org_id, app_id, bot_user_id, scope, token_sealed,
    installed_by, link_by, installed_at, active, inactive_at, inactive_why)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, true, NULL, '')
ON CONFLICT (team_id) DO UPDATE SET team_name = EXCLUDED.team_name, org_id = EXCLUDED.org_id,
    app_id = EXCLUDED.app_id, bot_user_id = EXCLUDED.bot_user_id, scope = EXCLUDED.scope,
    token_sealed = EXCLUDED.token_sealed, installed_by = EXCLUDED.installed_by, link_by = EXCLUDED.link_by,
    installed_at = EXCLUDED.installed_at, active = true, inactive_at = NULL, inactive_why = ''`,
			in.Team, in.TeamName, in.Org, in.AppID, in.BotUserID, in.Scope, sealed, in.InstalledBy, in.LinkBy, in.InstalledAt); err != nil {
			return fmt.Errorf("store the installation of workspace %s: %w", in.Team, err)
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
}

// Get returns team's installation, with its token opened; ok is false when
// the team never installed the app.
func (s *Installations) Get(ctx context.Context, team string) (Installation, bool, error) {
	var in Installation
	var sealed []byte
	var inactiveAt *time.Time
	err := s.pool.QueryRow(ctx, `
SELECT team_id, team_name, org_id, app_id, bot_user_id, scope, token_sealed, installed_by, link_by,
       installed_at, active, inactive_at, inactive_why
  FROM slack_installations WHERE team_id = $1`, team).Scan(&in.Team, &in.TeamName, &in.Org, &in.AppID, &in.BotUserID,
		&in.Scope, &sealed, &in.InstalledBy, &in.LinkBy, &in.InstalledAt, &in.Active, &inactiveAt, &in.InactiveWhy)
	if errors.Is(err, pgx.ErrNoRows) {
		return Installation{}, false, nil
	}
	if err != nil {
		return Installation{}, false, fmt.Errorf("read the installation of workspace %s: %w", team, err)
	}
	if inactiveAt != nil {
		in.InactiveAt = *inactiveAt
	}
	plain, err := s.key.Open(secrets.PurposeSlackToken, sealed, tokenAAD(team))
	if err != nil {
		return Installation{}, false, fmt.Errorf("open the token of workspace %s (was THREATDESK_SECRET_KEY changed?): %w", team, err)
	}
	in.token = secrets.String(plain)
	return in, true, nil
}

// List returns every installation, active first, then by workspace name;
// tokens are not opened.
func (s *Installations) List(ctx context.Context) ([]Installation, error) {
	rows, err := s.pool.Query(ctx, `
SELECT team_id, team_name, org_id, installed_by, link_by, installed_at, active, inactive_at, inactive_why
  FROM slack_installations ORDER BY active DESC, lower(team_name), team_id`)
	if err != nil {
		return nil, fmt.Errorf("list the installed workspaces: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Installation, error) {
		var in Installation
		var inactiveAt *time.Time
		err := r.Scan(&in.Team, &in.TeamName, &in.Org, &in.InstalledBy, &in.LinkBy, &in.InstalledAt, &in.Active, &inactiveAt, &in.InactiveWhy)
		if inactiveAt != nil {
			in.InactiveAt = *inactiveAt
		}
		return in, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the installed workspaces: %w", err)
	}
	return out, nil
}

// deactivate marks team's installation inactive for why, once: changed is
// false when it was inactive already or there is none, or when the event
// happened (occurred, zero when not known) before the installation: an
// uninstall Slack delivers late or again must not switch off the install
// that followed it. also runs in the same transaction when it changed
// (the desk's notice).
func (s *Installations) deactivate(ctx context.Context, team, why string, at, occurred time.Time, also func(pgx.Tx, Installation) error) (changed bool, err error) {
	var before *time.Time
	if !occurred.IsZero() {
		// event_time is whole seconds of Slack's clock, installed_at this
		// one's: a minute's margin keeps a real uninstall from being
		// ignored when this clock is ahead.
		t := occurred.Add(time.Second + uninstallClockMargin)
		before = &t
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var in Installation
		err := tx.QueryRow(ctx, `
UPDATE slack_installations SET active = false, inactive_at = $2, inactive_why = $3
 WHERE team_id = $1 AND active AND ($4::timestamptz IS NULL OR installed_at < $4)
RETURNING team_id, team_name, org_id, bot_user_id`, team, at, why, before).Scan(&in.Team, &in.TeamName, &in.Org, &in.BotUserID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mark workspace %s uninstalled: %w", team, err)
		}
		changed = true
		in.InactiveWhy, in.InactiveAt = why, at
		if also != nil {
			return also(tx, in)
		}
		return nil
	})
	return changed, err
}

// uninstallClockMargin is how far ahead of Slack's this clock may be without
// an uninstall being taken for one that came before the install.
const uninstallClockMargin = time.Minute

// workspaceTTL is how long a workspace's client is trusted before its
// installation is read again (another replica may have seen it uninstall).
const workspaceTTL = 30 * time.Second

// workspace is a customer workspace's client, cached by team.
type workspace struct {
	in  Installation
	api *slack.Client
	at  time.Time
}

// workspaces caches the clients of installed workspaces, one per token.
type workspaces struct {
	mu sync.Mutex
	m  map[string]*workspace
}

func (w *workspaces) get(team string) (*workspace, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ws, ok := w.m[team]
	// An uninstalled workspace is read again every time: reinstalled
	// through another replica, it must not stay dead here for the TTL.
	if !ok || time.Since(ws.at) > workspaceTTL || !ws.in.Active {
		return nil, false
	}
	return ws, true
}

func (w *workspaces) put(ws *workspace) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string]*workspace{}
	}
	w.m[ws.in.Team] = ws
}

func (w *workspaces) forget(team string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, team)
}

// Operator help for workspaces that cannot be reached.
const (
	helpNotInstalled = "threatdesk is not installed in this Slack workspace: an admin sends its Slack admin an install link (/experts install-link <org>), or the config names the wrong orgs[].slack.team"
	helpUninstalled  = "the workspace removed threatdesk: nothing is sent there until it adds the app again from a fresh install link (/experts install-link <org>)"
)

// ownTeam is the team of SLACK_BOT_TOKEN ("" while auth.test cannot say).
func (a *Adapter) ownTeam(ctx context.Context) string {
	if _, err := a.identity(ctx); err != nil {
		return ""
	}
	a.idMu.Lock()
	defer a.idMu.Unlock()
	return a.teamID
}

// client returns the Web API client for team: SLACK_BOT_TOKEN's for the
// provider's own workspace (or any workspace when Add to Slack is not set
// up, as a single-workspace install has always worked), the installed
// token's for a customer workspace. A workspace that never installed the
// app, or removed it, is a permanent error naming what to do; the token is
// never in it.
func (a *Adapter) client(ctx context.Context, team string) (*slack.Client, error) {
	ws, err := a.workspace(ctx, team)
	if err != nil || ws == nil {
		return a.api, err
	}
	return ws.api, nil
}

// workspace returns team's installation and client; nil (and no error) for
// the provider's own workspace, or when there is no installation store.
func (a *Adapter) workspace(ctx context.Context, team string) (*workspace, error) {
	if team == "" || a.installs == nil {
		return nil, nil
	}
	if ws, ok := a.clients.get(team); ok {
		return a.usable(ws)
	}
	own := a.ownTeam(ctx)
	if team == own {
		return nil, nil
	}
	in, ok, err := a.installs.Get(ctx, team)
	if err != nil {
		return nil, &bot.DeliveryError{Kind: bot.Temporary, Code: "installation", Err: err}
	}
	if !ok {
		if own == "" {
			// auth.test cannot say which team SLACK_BOT_TOKEN is: try later.
			return nil, &bot.DeliveryError{Kind: bot.Temporary, Code: "identity",
				Err: fmt.Errorf("workspace %s: not installed, and the own workspace is not known yet (auth.test failed)", team)}
		}
		a.metrics.refused.WithLabelValues("not_installed").Inc()
		return nil, &bot.DeliveryError{Kind: bot.Permanent, Code: "not_installed", Operator: helpNotInstalled,
			Err: fmt.Errorf("workspace %s has no installation", team)}
	}
	ws := &workspace{in: in, at: time.Now(), api: slack.New(in.token.Value(), slack.OptionAPIURL(a.cfg.APIURL), slack.OptionHTTPClient(a.cfg.HTTPClient))}
	a.clients.put(ws)
	return a.usable(ws)
}

func (a *Adapter) usable(ws *workspace) (*workspace, error) {
	if ws.in.Active {
		return ws, nil
	}
	why := cmp.Or(ws.in.InactiveWhy, "app_uninstalled")
	a.metrics.refused.WithLabelValues(why).Inc()
	return nil, &bot.DeliveryError{Kind: bot.Permanent, Code: why, Operator: helpUninstalled,
		Err: fmt.Errorf("workspace %s (%s, org %s) removed threatdesk (%s) on %s", ws.in.Team, ws.in.TeamName, ws.in.Org,
			ws.in.InactiveWhy, ws.in.InactiveAt.UTC().Format(time.RFC3339))}
}

// token returns the bot token for team (for the file downloads, which are
// not Web API calls).
func (a *Adapter) token(ctx context.Context, team string) (string, error) {
	ws, err := a.workspace(ctx, team)
	if err != nil {
		return "", err
	}
	if ws == nil {
		return a.cfg.BotToken.Value(), nil
	}
	return ws.in.token.Value(), nil
}

// botUser returns the app's bot user id in team (its own messages must not
// be taken for a person's); "" when it cannot say yet.
func (a *Adapter) botUser(ctx context.Context, team string) string {
	if ws, err := a.workspace(ctx, team); err == nil && ws != nil {
		return ws.in.BotUserID
	}
	own, err := a.identity(ctx)
	if err != nil {
		return ""
	}
	return own
}

// forgetOnAuthError drops team's cached client when Slack refused its
// token, so that the next call reads the installation again.
func (a *Adapter) forgetOnAuthError(team string, err error) {
	var de *bot.DeliveryError
	if team == "" || !errors.As(err, &de) {
		return
	}
	switch de.Code {
	case "invalid_auth", "token_revoked", "account_inactive", "token_expired":
		a.clients.forget(team)
	}
}

// teamName is a workspace for people: its name and id.
func teamName(in Installation) string {
	if in.TeamName == "" || strings.EqualFold(in.TeamName, in.Team) {
		return in.Team
	}
	return in.TeamName + " (" + in.Team + ")"
}

// Pin implements bot.Pinner with pins.add; a message pinned already is
// fine.
func (a *Adapter) Pin(ctx context.Context, ref bot.Ref) error {
	api, err := a.client(ctx, ref.Workspace)
	if err != nil {
		return fmt.Errorf("pin message %s in channel %q: %w", ref.Message, ref.Channel, err)
	}
	ctx, cancel := a.callCtx(ctx)
	defer cancel()
	err = api.AddPinContext(ctx, ref.Channel, slack.ItemRef{Channel: ref.Channel, Timestamp: ref.Message})
	a.metrics.call("pins.add", err)
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok && se.Err == "already_pinned" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pin message %s in channel %q: %w", ref.Message, ref.Channel, a.failed(ref.Workspace, "pins.add", err))
	}
	return nil
}
