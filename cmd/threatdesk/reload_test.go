package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

const reloadBase = `
orgs:
  - id: contoso
    name: Contoso
    slack:
      team: T0CONTOSO
      channels: [C0CONTOSOSOC]
desk:
  slack:
    channel: C0EXPERTDESK
experts:
  slack: [U0EXPERT1]
managers:
  slack: [U0MANAGER1]
admins:
  slack: [U0ADMIN1]
`

const reloadNorthwind = `
  - id: northwind
    name: Northwind
    tenants: ["a839b112-1253-6432-9bf6-94542403f21c"]
    slack:
      team: T0CONTOSO
      channels: [C0NORTHSOC]
`

// TestServeReloadsTheConfig: an admin's /experts reload switches the service
// to the edited file at once (a new org's channel opens cases), the change
// is audited and summarised in the thread of the desk's pinned
// configuration message; a bad file is refused with every problem and
// changes nothing; a non-admin cannot reload; SIGHUP reloads too.
func TestServeReloadsTheConfig(t *testing.T) {
	t.Parallel()
	fake := slackfake.New(t, slackfake.Options{
		TeamID: "T0CONTOSO",
		Channels: []slackfake.Channel{{ID: "C0CONTOSOSOC", Name: "soc"}, {ID: "C0EXPERTDESK", Name: "expert-desk"},
			{ID: "C0NORTHSOC", Name: "northwind-soc"}},
		Users: []slackfake.User{{ID: "U0ANALYST1", Name: "alice"}, {ID: "U0NORTH1", Name: "nina"}, {ID: "U0EXPERT1", Name: "eve"},
			{ID: "U0ADMIN1", Name: "ada", DisplayName: "Ada"}, {ID: "U0MANAGER1", Name: "max"}, {ID: "U0MANAGER2", Name: "mia"}},
	})
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	write := func(doc string) { require.NoError(t, os.WriteFile(cfgPath, []byte(doc), 0o600)) }
	write(reloadBase)
	const ingestToken = "reload-test-ingest-token"
	ctx, base, dbURL := serveOverSlack(t, fake, cfgPath, map[string]string{"THREATDESK_INGEST_TOKEN": ingestToken})

	var acksMu sync.Mutex
	var acks []string
	responses := func(want string) int {
		n := 0
		acksMu.Lock()
		for _, a := range acks {
			if strings.Contains(a, want) {
				n++
			}
		}
		acksMu.Unlock()
		for _, r := range fake.Responses() {
			if strings.Contains(r.Text+"\n"+string(r.Blocks), want) {
				n++
			}
		}
		return n
	}
	command := func(user, channel, text string) {
		t.Helper()
		ack, err := fake.Command(ctx, slackfake.SlashCommand{UserID: user, ChannelID: channel, Text: text})
		require.NoError(t, err)
		acksMu.Lock()
		acks = append(acks, string(ack.Payload))
		acksMu.Unlock()
		t.Logf("%s: %s", text, ack.Payload)
	}
	waitResponse := func(what, want string, n int) {
		t.Helper()
		testwait.For(t, 20*time.Second, what, func() bool { return responses(want) >= n }, fake)
	}
	audits := func(applied bool) int {
		return count(t, dbURL, `SELECT count(*) FROM config_reloads WHERE applied = `+map[bool]string{true: "true", false: "false"}[applied])
	}

	// Before: Northwind's channel is nobody's.
	command("U0NORTH1", "C0NORTHSOC", "ask is this ours?")
	waitResponse("Northwind's channel is not an org's yet", "not", 1)
	require.Zero(t, responses("Opened EOD-"))

	// Its tenant's alerts route nowhere, and nobody is on call.
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/alerts", bytes.NewReader(alertJSON(t, "da0000000000000000001", "nw-host1", "Before")))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+ingestToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "no org lists the tenant yet")
	require.Zero(t, count(t, dbURL, `SELECT count(*) FROM hunting_alerts WHERE org = 'northwind'`))
	command("U0EXPERT1", "C0EXPERTDESK", "oncall")
	waitResponse("no rotation yet", "No on-call rotation", 1)

	// A non-admin cannot reload.
	write(reloadBase + "\n# nothing\n")
	command("U0EXPERT1", "C0EXPERTDESK", "reload")
	waitResponse("the expert is refused", "admin", 1)
	require.Zero(t, audits(true)+audits(false))

	// 1. The admin adds Northwind and a manager, and reloads.
	good := strings.Replace(reloadBase, "desk:", strings.TrimPrefix(reloadNorthwind, "\n")+"desk:", 1)
	good = strings.Replace(good, "[U0MANAGER1]", "[U0MANAGER1, U0MANAGER2]", 1)
	good += "oncall:\n  handover: daily 09:00\n  rotation:\n    - slack: U0EXPERT1\n"
	write(good)
	command("U0ADMIN1", "C0EXPERTDESK", "reload")
	waitResponse("the admin's reload answer", "org northwind (Northwind) added", 1)
	require.Equal(t, 1, responses("managers on Slack: added U0MANAGER2"))
	require.Equal(t, 1, responses("oncall: the rotation or hand-over changed"))
	testwait.For(t, 20*time.Second, "the pinned configuration message and its thread", func() bool {
		pinned := fake.Pinned("C0EXPERTDESK")
		if len(pinned) != 1 || !strings.Contains(string(pinned[0].Blocks), "Configuration") {
			return false
		}
		for _, m := range fake.Replies("C0EXPERTDESK", pinned[0].TS) {
			if strings.Contains(string(m.Blocks), "org northwind (Northwind) added") && strings.Contains(string(m.Blocks), "Ada") {
				return true
			}
		}
		return false
	}, fake)
	require.Equal(t, 1, audits(true))
	require.Equal(t, 1, count(t, dbURL, `SELECT count(*) FROM config_reloads WHERE by_user = 'U0ADMIN1' AND by_platform = 'slack'
 AND 'org northwind (Northwind) added: Slack T0CONTOSO C0NORTHSOC' = ANY (changes) AND cardinality(restart) = 0`))

	// Northwind's channel now opens cases, its tenant's alerts are its,
	// and the rotation is on: at once.
	postAlertTo(t, base, ingestToken, alertJSON(t, "da0000000000000000002", "nw-host2", "After"))
	require.Equal(t, 1, count(t, dbURL, `SELECT count(*) FROM hunting_alerts WHERE org = 'northwind'`))
	command("U0EXPERT1", "C0EXPERTDESK", "oncall")
	waitResponse("the rotation answers", "On call", 1)
	command("U0NORTH1", "C0NORTHSOC", "ask is this ours now?")
	waitResponse("Northwind's first case", "Opened EOD-1", 1)

	// 2. A bad file: every problem is answered, nothing changes.
	bad := strings.Replace(good, "channels: [C0NORTHSOC]", "channels: [\"#northwind\"]", 1)
	bad = strings.Replace(bad, "channel: C0EXPERTDESK", "channel: expert-desk", 1)
	write(bad)
	command("U0ADMIN1", "C0EXPERTDESK", "reload")
	waitResponse("the refusal", "Reload refused", 1)
	require.Equal(t, 1, responses("#northwind"))
	require.Equal(t, 1, responses("expert-desk"))
	require.Equal(t, 1, responses("2 problems"))
	require.Equal(t, 1, audits(false))
	command("U0NORTH1", "C0NORTHSOC", "ask still ours?")
	waitResponse("Northwind still works", "Opened EOD-2", 1)

	// 3. SIGHUP reloads the file as it is now (fixed, Mia removed again).
	write(strings.Replace(good, "[U0MANAGER1, U0MANAGER2]", "[U0MANAGER1]", 1))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	testwait.For(t, 20*time.Second, "the SIGHUP reload's note in the configuration thread", func() bool {
		pinned := fake.Pinned("C0EXPERTDESK")
		if len(pinned) != 1 {
			return false
		}
		for _, m := range fake.Replies("C0EXPERTDESK", pinned[0].TS) {
			if strings.Contains(string(m.Blocks), "managers on Slack: removed U0MANAGER2") && strings.Contains(string(m.Blocks), "SIGHUP") {
				return true
			}
		}
		return false
	}, fake)
	require.Equal(t, 1, count(t, dbURL, `SELECT count(*) FROM config_reloads WHERE by_platform = 'signal' AND applied`))
	require.Empty(t, fake.Violations())
}

// TestReloadDiffNamesNoSecret: a changed ingest token is reported as a
// change without the token, and an unchanged file has no changes.
func TestReloadDiffNamesNoSecret(t *testing.T) {
	t.Parallel()
	file := func(token string) *config.File {
		f, err := config.ParseFile([]byte(reloadBase))
		require.NoError(t, err)
		f.Orgs[0].Hunting.IngestToken = secrets.String(token)
		return f
	}
	changes, restart := diffFiles(file("old-secret-value-1234"), file("old-secret-value-1234"))
	require.Empty(t, changes)
	require.Empty(t, restart)
	changes, restart = diffFiles(file("old-secret-value-1234"), file("new-secret-value-5678"))
	require.Equal(t, []string{"org contoso: its alert routing changed (tenants, notify_score or ingest token)"}, changes)
	require.Empty(t, restart)
	require.NotContains(t, strings.Join(append(changes, restart...), "\n"), "secret-value")
}

// TestRunningFileIsTheOneRead: the file a replica runs is the one Load
// read, not the file as it is when the reloader is made (after the
// database started and migrated): read again then, a file changed in
// between was taken as running, and when another replica applied it this
// one never did (from a review).
func TestRunningFileIsTheOneRead(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(path, []byte("timezone: UTC\n"), 0o600))
	cfg, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": path}))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte("timezone: Europe/Paris\n"), 0o600)) // changed meanwhile
	r := newReloader(cfg, nil, auditOnly{}, nil, nil, nil, slog.New(slog.DiscardHandler))
	sum := sha256.Sum256([]byte("timezone: UTC\n"))
	require.Equal(t, hex.EncodeToString(sum[:]), r.runningSHA)
}

// TestReloadRefusesADeskOnAPlatformNotConnected: a reload moving the desk
// to Discord while this threatdesk connects only to Slack was applied, and
// every desk card then failed until it went dead (from a review).
func TestReloadRefusesADeskOnAPlatformNotConnected(t *testing.T) {
	t.Parallel()
	base, err := config.ParseFile([]byte(reloadBase))
	require.NoError(t, err)
	r := &reloader{cfg: &config.Config{}, running: *base} // Discord not enabled
	same, err := config.ParseFile([]byte(reloadBase))
	require.NoError(t, err)
	require.NoError(t, r.deskReachable(same), "the desk stays where it is")
	moved, err := config.ParseFile([]byte(strings.Replace(reloadBase, "desk:\n  slack:\n    channel: C0EXPERTDESK",
		"desk:\n  discord:\n    guild: \"1000000000000000001\"\n    channel: \"1000000000000000002\"", 1)))
	require.NoError(t, err)
	require.NotNil(t, moved.Bot.Desk.Discord)
	require.ErrorContains(t, r.deskReachable(moved), "desk: it moves to discord, which this threatdesk does not connect to")
}

// TestFollowAppliesOnlyTheFileItChecked: a replica following another's
// reload checks its file is that file, then reads it again to apply it; a
// file changed in between was applied, unaudited (from a review). It is
// not: the next look decides.
func TestFollowAppliesOnlyTheFileItChecked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(path, []byte("timezone: UTC\n"), 0o600))
	cfg, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": path}))
	require.NoError(t, err)
	r := newReloader(cfg, nil, auditOnly{}, nil, nil, nil, slog.New(slog.DiscardHandler))
	running := r.runningSHA
	rep, err := r.reloadFile(context.Background(), nil, "the digest the follow checked, not this file's")
	require.NoError(t, err)
	require.False(t, rep.Applied)
	require.Empty(t, rep.Problems)
	require.Equal(t, running, r.runningSHA)
}

// TestReloadDiffCoversEveryBlock: each block of the config file, changed,
// is reported, as applied or as needing a restart. insight.window was
// neither: a reload answered "valid and unchanged", and the old window
// stayed (from a review). A block added to config.File without a case here
// fails the test.
func TestReloadDiffCoversEveryBlock(t *testing.T) {
	t.Parallel()
	base, err := config.ParseFile([]byte(reloadBase))
	require.NoError(t, err)
	change := map[string]func(f *config.File){
		"Timezone": func(f *config.File) { f.Timezone = "Europe/Paris" },
		"Orgs":     func(f *config.File) { f.Orgs[0].Name = "Contoso Ltd" },
		"Bot":      func(f *config.File) { f.Bot.Experts.Slack = append(f.Bot.Experts.Slack, "U0EXPERT9") },
		"Cases":    func(f *config.File) { f.Cases.RemindAfter = 12 * time.Hour },
		"Samples":  func(f *config.File) { f.Samples.CaseMaxBytes = 5 << 30 },
		"Hunting":  func(f *config.File) { f.Hunting.RepeatInterval = 3 * time.Hour },
		"Oncall":   func(f *config.File) { f.Oncall.PageAfter = time.Hour },
		"Insight":  func(f *config.File) { f.Insight.Window = 7 * 24 * time.Hour },
	}
	for i := range reflect.TypeFor[config.File]().NumField() {
		name := reflect.TypeFor[config.File]().Field(i).Name
		if name == "Location" || name == "SHA256" {
			continue // Timezone, loaded; the file's digest
		}
		t.Run(name, func(t *testing.T) {
			mod, ok := change[name]
			require.True(t, ok, "config.File.%s: say how a reload reports a change of it (diffFiles), and add it here", name)
			next, err := config.ParseFile([]byte(reloadBase))
			require.NoError(t, err)
			mod(next)
			changes, restart := diffFiles(base, next)
			require.NotEmpty(t, append(changes, restart...), "a change of %s is reported", name)
		})
	}
}

// TestReplicasFollowAReload: two replicas on one database, each with its
// own copy of the config file (as on two machines); only A is told to
// reload (SIGHUP to its process, as an admin's /experts reload reaches
// only the replica that handles it). B keeps its configuration while its
// copy is not yet the file A reloaded, and follows within seconds once it
// is: the new org's tenant routes alerts on B too, and the reload is
// audited once. B used to keep the old configuration (experts, rotation,
// orgs) until its own reload or restart.
func TestReplicasFollowAReload(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	fake := slackfake.New(t, slackfake.Options{
		TeamID:   "T0CONTOSO",
		Channels: []slackfake.Channel{{ID: "C0CONTOSOSOC", Name: "soc"}, {ID: "C0EXPERTDESK", Name: "expert-desk"}, {ID: "C0NORTHSOC", Name: "northwind-soc"}},
		Users:    []slackfake.User{{ID: "U0EXPERT1", Name: "eve"}, {ID: "U0ADMIN1", Name: "ada"}, {ID: "U0MANAGER1", Name: "max"}},
	})
	_, dbURL := pgtest.Empty(t)
	dir := t.TempDir()
	pathA, pathB := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	write := func(path, doc string) { require.NoError(t, os.WriteFile(path, []byte(doc), 0o600)) }
	write(pathA, reloadBase)
	write(pathB, reloadBase)
	const token = "follow-ingest-token-0123456789"
	so := fake.Options()
	start := func(path string) replica {
		addr := freeAddr(t)
		r := replica{child: startChild(t, map[string]string{
			"DATABASE_URL":            dbURL,
			"THREATDESK_HTTP_ADDR":    addr,
			"THREATDESK_CONFIG":       path,
			"THREATDESK_INGEST_TOKEN": token,
			"THREATDESK_SECRET_KEY":   testKey,
			"THREATDESK_LOG_FORMAT":   "text",
			"SLACK_BOT_TOKEN":         so.BotToken,
			"SLACK_APP_TOKEN":         so.AppToken,
			"SLACK_API_URL":           fake.APIURL(),
		}, nil), base: "http://" + addr}
		r.waitReady(t, r.base)
		return r
	}
	a, b := start(pathA), start(pathB)
	n := 0
	status := func(base string) int {
		n++
		req, err := http.NewRequest(http.MethodPost, base+"/api/v1/alerts", bytes.NewReader(alertJSON(t, fmt.Sprintf("da-follow-%d", n), "nw-host", "Northwind")))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		return resp.StatusCode
	}
	require.Equal(t, http.StatusUnprocessableEntity, status(b.base), "no org lists Northwind's tenant yet")

	withNorthwind := strings.Replace(reloadBase, "desk:", strings.TrimPrefix(reloadNorthwind, "\n")+"desk:", 1)
	write(pathA, withNorthwind)
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, 20*time.Second, "A reloaded", func() bool { return status(a.base) == http.StatusOK })
	waitFor(t, 20*time.Second, "B saw that its file is not A's", func() bool {
		return strings.Contains(b.logs.String(), "keeps its running configuration until its file is the same")
	})
	require.Equal(t, http.StatusUnprocessableEntity, status(b.base), "B does not apply a file that is not the one A reloaded")

	write(pathB, withNorthwind) // B's copy arrives
	waitFor(t, 20*time.Second, "B followed A's reload", func() bool { return status(b.base) == http.StatusOK })
	require.Equal(t, 1, count(t, dbURL, `SELECT count(*) FROM config_reloads`), "audited once, by A")
	require.Contains(t, b.logs.String(), "by=\"another replica\"")
}

// TestReloadKeepsTheStartTimeZone: the time zone needs a restart. Each
// reload that finds it edited says so, and the rotation hands over in the
// zone the service started with, however many reloads follow (the second
// used to count from the first reload's file: it said nothing and moved
// the hand-overs into the new zone).
func TestReloadKeepsTheStartTimeZone(t *testing.T) {
	t.Parallel()
	fake := slackfake.New(t, slackfake.Options{
		TeamID:   "T0CONTOSO",
		Channels: []slackfake.Channel{{ID: "C0CONTOSOSOC", Name: "soc"}, {ID: "C0EXPERTDESK", Name: "expert-desk"}},
		Users:    []slackfake.User{{ID: "U0EXPERT1", Name: "eve"}, {ID: "U0ADMIN1", Name: "ada"}, {ID: "U0MANAGER1", Name: "max"}},
	})
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	write := func(doc string) { require.NoError(t, os.WriteFile(cfgPath, []byte(doc), 0o600)) }
	doc := func(zone string) string {
		return "timezone: " + zone + "\n" + reloadBase + "oncall:\n  handover: daily 09:00\n  rotation:\n    - slack: U0EXPERT1\n"
	}
	write(doc("UTC"))
	ctx, _, dbURL := serveOverSlack(t, fake, cfgPath, nil)
	answers := func(want string) int {
		n := 0
		for _, r := range fake.Responses() {
			if strings.Contains(r.Text+"\n"+string(r.Blocks), want) {
				n++
			}
		}
		return n
	}
	command := func(user, text string) {
		t.Helper()
		_, err := fake.Command(ctx, slackfake.SlashCommand{UserID: user, ChannelID: "C0EXPERTDESK", Text: text})
		require.NoError(t, err)
	}

	write(doc("Asia/Tokyo"))
	for i := 1; i <= 2; i++ {
		command("U0ADMIN1", "reload")
		testwait.For(t, 20*time.Second, fmt.Sprintf("reload %d's answer", i), func() bool { return answers("timezone UTC → Asia/Tokyo") >= i }, fake)
	}
	require.Equal(t, 2, count(t, dbURL, `SELECT count(*) FROM config_reloads WHERE applied AND 'timezone UTC → Asia/Tokyo' = ANY (restart)`),
		"both reloads say the time zone waits for a restart")

	command("U0EXPERT1", "oncall")
	testwait.For(t, 20*time.Second, "the on-call answer", func() bool { return answers("On call") >= 1 }, fake)
	require.Equal(t, 1, answers("09:00 UTC"), "the hand-over stays at 09:00 in the zone of the start")
	require.Zero(t, answers("Asia/Tokyo\n")+answers("09:00 Asia/Tokyo"))
	require.Empty(t, fake.Violations())
}

// serveOverSlack runs serve, until the test ends, on a fresh database with
// the config file at cfgPath and Slack on fake over Socket Mode, with extra
// environment variables; it returns once serve is ready and connected,
// with serve's context, its base URL and the database's URL.
func serveOverSlack(t *testing.T, fake *slackfake.Server, cfgPath string, extra map[string]string) (ctx context.Context, base, dbURL string) {
	t.Helper()
	_, dbURL = pgtest.Empty(t)
	opts := fake.Options()
	env := map[string]string{
		"DATABASE_URL":          dbURL,
		"THREATDESK_HTTP_ADDR":  freeAddr(t),
		"THREATDESK_CONFIG":     cfgPath,
		"THREATDESK_SECRET_KEY": "8f1c0d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100",
		"SLACK_BOT_TOKEN":       opts.BotToken,
		"SLACK_APP_TOKEN":       opts.AppToken,
		"SLACK_API_URL":         fake.APIURL(),
	}
	maps.Copy(env, extra)
	cfg, err := config.Load(envOf(env))
	require.NoError(t, err)
	log := slog.New(slog.NewJSONHandler(&syncWriter{w: &bytes.Buffer{}}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	base = "http://" + env["THREATDESK_HTTP_ADDR"]
	require.Eventually(t, func() bool { return get(base+"/readyz") == http.StatusOK }, 20*time.Second, 50*time.Millisecond)
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	require.NoError(t, fake.WaitConnected(wctx))
	return ctx, base, dbURL
}
