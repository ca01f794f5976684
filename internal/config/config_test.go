package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/hunting"
	"github.com/threatdesk/threatdesk/internal/config"
	"github.com/threatdesk/threatdesk/oncall"
)

func envOf(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := kv[k]
		return v, ok
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestNoEnvironmentAtAll(t *testing.T) {
	t.Parallel()
	c, err := config.Load(envOf(nil))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	require.Equal(t, "https://slack.com/api/", c.Slack.APIURL)
	require.Equal(t, "https://discord.com/api/v10/", c.Discord.APIURL)
	require.NotEmpty(t, c.DataDir)
	require.False(t, c.SlackEnabled())
	require.False(t, c.DiscordEnabled())
	// Started with no config at all, it says so, and what to do (it said
	// nothing, and no org could be reached).
	require.Equal(t, []string{"THREATDESK_CONFIG is not set: no organisation can ask experts or get notifications; write a config file with orgs (threatdesk.example.yaml shows one) and point THREATDESK_CONFIG at it"}, c.Warnings())
	require.Equal(t, "UTC", c.File.Timezone)
	require.Equal(t, time.UTC, c.File.Location)
	require.False(t, c.File.Oncall.Enabled())
	require.Equal(t, oncall.DefaultPageAfter, c.File.Oncall.PageAfter)
}

func TestExampleLoadsAsWritten(t *testing.T) {
	t.Parallel()
	c, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": exampleFile}))
	require.NoError(t, err)
	f := c.File
	require.Len(t, f.Orgs, 2)
	require.Equal(t, "contoso", f.Orgs[0].ID)
	require.Equal(t, "T0CONTOSO", f.Orgs[0].Slack.Team)
	require.Equal(t, []string{"C0CONTOSOSOC"}, f.Orgs[0].Slack.Channels)
	require.Equal(t, 10, *f.Orgs[0].Casework.CreditsPerQuarter)
	require.Equal(t, "1000000000000000001", f.Orgs[1].Discord.Guild)
	require.Nil(t, f.Orgs[1].Casework.CreditsPerQuarter)
	require.Equal(t, casework.DefaultCreditsPerQuarter, f.Cases.CreditsPerQuarter, "default credits")
	require.Equal(t, "C0EXPERTDESK", f.Bot.Desk.Slack.Channel)
	require.Equal(t, []string{"U0EXPERT1", "U0EXPERT2"}, f.Bot.Experts.Slack)
	require.Equal(t, []string{"U0MANAGER1"}, f.Bot.Managers.Slack)
	// Each package got its part of the orgs.
	require.Equal(t, []string{"contoso", "fabrikam"}, []string{f.Bot.Orgs[0].ID, f.Bot.Orgs[1].ID})
	require.Equal(t, "Fabrikam", f.Bot.Orgs[1].Name)
	require.Equal(t, []string{"b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"}, f.Hunting.Orgs[1].Tenants)
	require.Equal(t, "fabrikam", f.Hunting.Orgs[1].ID)
	require.Equal(t, "contoso", f.Cases.Orgs[0].ID)
	require.Equal(t, 10, *f.Cases.Orgs[0].CreditsPerQuarter)
	org, ok := f.OrgByTenant("B3C1B5FC-828C-45FA-A1E1-10D74F6D6E9C")
	require.True(t, ok)
	require.Equal(t, "fabrikam", org)
	// Defaults documented in the README.
	require.Equal(t, time.Hour, f.Cases.SLA.High.FirstResponse)
	require.Equal(t, 120*time.Hour, f.Cases.SLA.Low.Conclusion)
	require.Equal(t, 14*24*time.Hour, f.Cases.ReopenWindow)
	require.Equal(t, 0.75, f.Cases.SLA.WarnAt)
	require.Equal(t, 20, f.Cases.CreditsCap)
	require.Equal(t, 30*time.Second, f.Hunting.GroupWait)
	require.Equal(t, 24*time.Hour, f.Hunting.Window)
	require.Equal(t, 50, f.Hunting.NotifyScore)
	require.Equal(t, hunting.SeverityHigh, f.Hunting.RepeatSeverity)
	require.Equal(t, int64(16<<20), f.Hunting.MaxBodyBytes)
	require.Equal(t, time.Minute, f.Cases.SweepEvery)
	require.Equal(t, 2*time.Minute, f.Bot.Delivery.Lease)
	require.Contains(t, strings.Join(c.Warnings(), "\n"), "SLACK_BOT_TOKEN is not set")
}

func TestEnvironmentErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"app token prefix", map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-nope"}, "SLACK_APP_TOKEN must start with xapp-"},
		{"bot token prefix", map[string]string{"SLACK_BOT_TOKEN": "xoxp-1", "SLACK_APP_TOKEN": "xapp-1"}, "SLACK_BOT_TOKEN must start with xoxb-"},
		{"app token without bot token", map[string]string{"SLACK_APP_TOKEN": "xapp-1"}, "Socket Mode needs both"},
		{"bot token with no way in", map[string]string{"SLACK_BOT_TOKEN": "xoxb-1"}, "set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET"},
		{"signing secret alone", map[string]string{"SLACK_SIGNING_SECRET": "abc"}, "SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not"},
		{"slack api url slash", map[string]string{"SLACK_API_URL": "http://127.0.0.1:9/api"}, "SLACK_API_URL \"http://127.0.0.1:9/api\" must end with a slash"},
		{"slack api url scheme", map[string]string{"SLACK_API_URL": "ftp://x/"}, "SLACK_API_URL \"ftp://x/\" must be an http(s) URL"},
		{"discord api url", map[string]string{"DISCORD_API_URL": "not a url"}, "DISCORD_API_URL"},
		{"discord app id missing", map[string]string{"DISCORD_BOT_TOKEN": "abc"}, "DISCORD_APP_ID must be set with DISCORD_BOT_TOKEN"},
		{"discord app id format", map[string]string{"DISCORD_BOT_TOKEN": "abc", "DISCORD_APP_ID": "app"}, "DISCORD_APP_ID \"app\" must be a numeric Discord id"},
		{"discord public key", map[string]string{"DISCORD_BOT_TOKEN": "abc", "DISCORD_APP_ID": "1000000000000000009", "DISCORD_PUBLIC_KEY": "zz"}, "DISCORD_PUBLIC_KEY must be the 64 hex characters"},
		{"database url", map[string]string{"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be a postgres:// URL"},
		{"http addr", map[string]string{"THREATDESK_HTTP_ADDR": "8080"}, "THREATDESK_HTTP_ADDR \"8080\" must be host:port"},
		{"metrics addr", map[string]string{"THREATDESK_METRICS_ADDR": "9090"}, "THREATDESK_METRICS_ADDR \"9090\" must be host:port"},
		{"metrics addr same as http", map[string]string{"THREATDESK_METRICS_ADDR": "127.0.0.1:8080"}, "THREATDESK_METRICS_ADDR must differ from THREATDESK_HTTP_ADDR"},
		{"log format", map[string]string{"THREATDESK_LOG_FORMAT": "xml"}, "THREATDESK_LOG_FORMAT \"xml\" must be json or text"},
		{"log level", map[string]string{"THREATDESK_LOG_LEVEL": "loud"}, "THREATDESK_LOG_LEVEL \"loud\""},
		{"ingest token short", map[string]string{"THREATDESK_INGEST_TOKEN": "short"}, "THREATDESK_INGEST_TOKEN is too short"},
		{"config missing", map[string]string{"THREATDESK_CONFIG": "testdata/nope.yaml"}, "THREATDESK_CONFIG: read testdata/nope.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(envOf(tc.env))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	t.Parallel()
	secrets := map[string]string{
		"SLACK_BOT_TOKEN":         "xoxp-S3CR3T-BOT",
		"SLACK_APP_TOKEN":         "xoxb-S3CR3T-APP",
		"SLACK_SIGNING_SECRET":    "S3CR3T-SIGNING",
		"DISCORD_BOT_TOKEN":       "S3CR3T-DISCORD",
		"THREATDESK_INGEST_TOKEN": "S3CR3T",
		"DATABASE_URL":            "mysql://user:S3CR3T-PASSWORD@host/db",
		"THREATDESK_SECRET_KEY":   "S3CR3T-is-not-a-key",
	}
	_, err := config.Load(envOf(secrets))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "S3CR3T")

	c, err := config.Load(envOf(map[string]string{"SLACK_BOT_TOKEN": "xoxb-S3CR3T", "SLACK_APP_TOKEN": "xapp-S3CR3T"}))
	require.NoError(t, err)
	require.NotContains(t, fmt.Sprintf("%v %+v %#v %s", c, c, c, c.Slack.BotToken), "S3CR3T")
	require.Equal(t, "xoxb-S3CR3T", c.Slack.BotToken.Value())
}

func TestFileErrors(t *testing.T) {
	t.Parallel()
	const desk = "desk:\n  slack:\n    channel: C0DESK\n"
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown key", "orgz: []\n", "line 1: orgz is not a setting (did you mean orgs?)"},
		{"bad org id", "orgs:\n  - id: Contoso Inc\n    slack: {team: T1AB, channels: [C1AB]}\n" + desk, `orgs[0].id "Contoso Inc" must be lower-case`},
		{"duplicate org", "orgs:\n  - id: a\n    slack: {team: T1AB, channels: [C1AB]}\n  - id: a\n    slack: {team: T1AB, channels: [C2AB]}\n" + desk, "used by two orgs"},
		{"bad tenant", "orgs:\n  - id: a\n    tenants: [contoso.com]\n    slack: {team: T1AB, channels: [C1AB]}\n" + desk, `"contoso.com" is not a tenant id`},
		{"tenant in two orgs", "orgs:\n  - id: a\n    tenants: [a839b112-1253-6432-9bf6-94542403f21c]\n    slack: {team: T1AB, channels: [C1AB]}\n  - id: b\n    tenants: [A839B112-1253-6432-9BF6-94542403F21C]\n    slack: {team: T1AB, channels: [C2AB]}\n" + desk, "already belongs to org a"},
		{"no chat", "orgs:\n  - id: a\n" + desk, "orgs[0] (a) has no chat"},
		{"channel name not id", "orgs:\n  - id: a\n    slack: {team: T1AB, channels: ['#soc']}\n" + desk, `"#soc" must be a Slack channel id`},
		{"channel in two orgs", "orgs:\n  - id: a\n    slack: {team: T1AB, channels: [C1AB]}\n  - id: b\n    slack: {team: T1AB, channels: [C1AB]}\n" + desk, "C1AB already belongs to org a"},
		{"no channels", "orgs:\n  - id: a\n    slack: {team: T1AB}\n" + desk, "orgs[0] (a).slack.channels is empty"},
		{"bad team", "orgs:\n  - id: a\n    slack: {team: contoso, channels: [C1AB]}\n" + desk, `slack.team "contoso" must be a Slack team id`},
		{"discord guild unquoted-ish", "orgs:\n  - id: a\n    discord: {guild: abc, channels: ['1000000000000000002']}\n" + desk, `discord.guild "abc"`},
		{"credits too many", "orgs:\n  - id: a\n    credits_per_quarter: 50\n    slack: {team: T1AB, channels: [C1AB]}\n" + desk, "credits_per_quarter 50 must be between 0"},
		{"no desk", "orgs:\n  - id: a\n    slack: {team: T1AB, channels: [C1AB]}\n", "desk is missing"},
		{"desk is org channel", "orgs:\n  - id: a\n    slack: {team: T1AB, channels: [C0DESK]}\n" + desk, "is also org a's channel"},
		{"expert name not id", "experts:\n  slack: [alice]\n", `experts.slack: "alice" must be a Slack user id`},
		{"sla order", "cases:\n  sla:\n    high: {first_response: 2d, conclusion: 1h}\n", "cases.sla.high.first_response (48h0m0s) must not exceed conclusion (1h0m0s)"},
		{"bad duration", "cases:\n  reopen_window: fortnight\n", `line 2: cases.reopen_window: "fortnight" is not a duration`},
		{"warn at", "cases:\n  sla:\n    warn_at: 1.5\n", "cases.sla.warn_at 1.5 must be a fraction"},
		{"sla check interval", "cases:\n  sla:\n    check_interval: 500ms\n", "cases.sla.check_interval 500ms is too short: use at least 1s"},
		{"delivery lease", "delivery:\n  lease: 2s\n", "delivery.lease 2s"},
		{"delivery unknown key", "delivery:\n  workers: 2\n", "line 2: delivery.workers is not a setting"},
		{"delivery unknown key", "delivery:\n  workers: 2\n", "line 2: delivery.workers is not a setting"},
		{"notify score", "hunting:\n  notify_score: 500\n", "hunting.notify_score 500 must be between 1 and 100"},
		{"common entity", "hunting:\n  common_entity_devices: 1\n", "hunting.common_entity_devices 1 must be at least 2"},
		{"chain window shorter", "hunting:\n  correlation_window: 2d\n  chain_window: 1d\n", "hunting.chain_window 24h0m0s is shorter than hunting.correlation_window 48h0m0s"},
		{"repeat severity", "hunting:\n  repeat_severity: urgent\n", `hunting.repeat_severity "urgent"`},
		{"graph without tenants", "hunting:\n  graph: {interval: 1m}\n", "hunting.graph.tenants is empty"},
		{"graph unknown tenant", "hunting:\n  graph:\n    tenants: [{tenant_id: a839b112-1253-6432-9bf6-94542403f21c, client_id: b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c, client_secret_env: X}]\n", "is not in any org's tenants"},
		{"graph secret env unset", "hunting:\n  graph:\n    tenants: [{tenant_id: a839b112-1253-6432-9bf6-94542403f21c, client_id: b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c, client_secret_env: NOT_SET_ANYWHERE}]\n", "environment variable NOT_SET_ANYWHERE (client_secret_env) is not set"},
		{"graph client id", "hunting:\n  graph:\n    tenants: [{tenant_id: x, client_id: app, client_secret_env: X}]\n", `client_id "app" must be the app registration's`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, tc.yaml)
			_, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": p}))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestAllErrorsReportedTogether(t *testing.T) {
	t.Parallel()
	_, err := config.Load(envOf(map[string]string{"THREATDESK_LOG_FORMAT": "xml", "THREATDESK_HTTP_ADDR": "x"}))
	require.ErrorContains(t, err, "THREATDESK_LOG_FORMAT")
	require.ErrorContains(t, err, "THREATDESK_HTTP_ADDR")
}

func TestDurations(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "4h": 4 * time.Hour, "2d": 48 * time.Hour, "90m": 90 * time.Minute} {
		got, err := config.ParseDuration(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := config.ParseDuration("2dd")
	require.Error(t, err)
}

// exampleFile is the config example kept at the repository's root; the
// README shows the same text.
const exampleFile = "../../threatdesk.example.yaml"

// TestReadmeExampleLoads keeps the README's example equal to the example file,
// which TestExampleLoadsAsWritten loads.
func TestReadmeExampleLoads(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(readme)
	require.NotNil(t, m, "README.md has a yaml example")
	ours, err := os.ReadFile(exampleFile)
	require.NoError(t, err)
	require.Equal(t, string(ours), string(m[1]))
}

func TestGraphSecretComesFromTheEnvironment(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
orgs:
  - id: contoso
    tenants: ["a839b112-1253-6432-9bf6-94542403f21c"]
    slack: {team: T0CONTOSO, channels: [C0CONTOSOSOC]}
desk:
  slack: {channel: C0EXPERTDESK}
hunting:
  graph:
    tenants:
      - tenant_id: a839b112-1253-6432-9bf6-94542403f21c
        client_id: 11111111-2222-3333-4444-555555555555
        client_secret_env: CONTOSO_GRAPH_SECRET
`)
	c, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": p, "CONTOSO_GRAPH_SECRET": "s3cr3t-value"}))
	require.NoError(t, err)
	g := c.File.Hunting.Graph
	require.Equal(t, time.Minute, g.Interval)
	require.Equal(t, "s3cr3t-value", g.Tenants[0].ClientSecret.Value())
	require.NotContains(t, fmt.Sprintf("%+v", c), "s3cr3t-value")
	require.NotContains(t, fmt.Sprintf("%+v", g.Tenants[0]), "s3cr3t-value")
}

func TestSecretKey(t *testing.T) {
	t.Parallel()
	const hexKey = "8f1c0d2e3b4a59687766554433221100ffeeddccbbaa99887766554433221100"
	c, err := config.Load(envOf(map[string]string{"THREATDESK_SECRET_KEY": hexKey, "DATABASE_URL": "postgres://u:p@db/threatdesk"}))
	require.NoError(t, err)
	require.NotNil(t, c.Key)
	require.Equal(t, hexKey, c.Key.Encode())
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", c, c, c), hexKey, "the key never prints")

	c, err = config.Load(envOf(nil))
	require.NoError(t, err)
	require.Nil(t, c.Key, "unset with the embedded database: generated into the data dir by the caller")

	c, err = config.Load(envOf(map[string]string{"DATABASE_URL": "postgres://u:p@db/threatdesk"}))
	require.NoError(t, err, "migrate needs no key; serve requires it with DATABASE_URL")
	require.Nil(t, c.Key)

	_, err = config.Load(envOf(map[string]string{"THREATDESK_SECRET_KEY": hexKey[:40]}))
	require.ErrorContains(t, err, "THREATDESK_SECRET_KEY: invalid secret key: it decodes to 20 bytes, not 32")
	require.NotContains(t, err.Error(), hexKey[:40])
}

func TestOrgIngestTokens(t *testing.T) {
	t.Parallel()
	const orgs = `
orgs:
  - id: contoso
    tenants: ["a839b112-1253-6432-9bf6-94542403f21c"]
    slack: {team: T0CONTOSO, channels: [C0CONTOSOSOC]}
    ingest_token_env: CONTOSO_INGEST_TOKEN
  - id: fabrikam
    tenants: ["b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"]
    slack: {team: T0CONTOSO, channels: [C0FABRIKAM]}
    ingest_token_env: FABRIKAM_INGEST_TOKEN
desk:
  slack: {channel: C0EXPERTDESK}
`
	p := writeFile(t, orgs)
	const contoso, fabrikam = "contoso-token-0123456789abcdef", "fabrikam-token-0123456789abcdef"
	c, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": p, "CONTOSO_INGEST_TOKEN": contoso, "FABRIKAM_INGEST_TOKEN": fabrikam}))
	require.NoError(t, err)
	require.Equal(t, contoso, c.File.Hunting.Orgs[0].IngestToken.Value())
	require.Equal(t, fabrikam, c.File.Hunting.Orgs[1].IngestToken.Value())
	require.NotContains(t, fmt.Sprintf("%+v", c), contoso)
	require.NotContains(t, strings.Join(c.Warnings(), "\n"), "THREATDESK_INGEST_TOKEN", "org tokens open the intake")

	for _, tc := range []struct {
		name string
		yaml string
		env  map[string]string
		want string
	}{
		{"unset", orgs, map[string]string{"FABRIKAM_INGEST_TOKEN": fabrikam}, "environment variable CONTOSO_INGEST_TOKEN (ingest_token_env) is not set"},
		{"short", orgs, map[string]string{"CONTOSO_INGEST_TOKEN": "short", "FABRIKAM_INGEST_TOKEN": fabrikam}, "the token in CONTOSO_INGEST_TOKEN is too short"},
		{"shared", orgs, map[string]string{"CONTOSO_INGEST_TOKEN": contoso, "FABRIKAM_INGEST_TOKEN": contoso}, "the token in FABRIKAM_INGEST_TOKEN is the same as CONTOSO_INGEST_TOKEN"},
		{"same as global", orgs, map[string]string{"THREATDESK_INGEST_TOKEN": contoso, "CONTOSO_INGEST_TOKEN": contoso, "FABRIKAM_INGEST_TOKEN": fabrikam}, "the same as THREATDESK_INGEST_TOKEN"},
		{"not a name", strings.Replace(orgs, "ingest_token_env: CONTOSO_INGEST_TOKEN", "ingest_token_env: "+contoso, 1), map[string]string{"FABRIKAM_INGEST_TOKEN": fabrikam}, "must be the name of an environment variable"},
		{"no tenants", strings.Replace(orgs, `tenants: ["a839b112-1253-6432-9bf6-94542403f21c"]`, "tenants: []", 1), map[string]string{"CONTOSO_INGEST_TOKEN": contoso, "FABRIKAM_INGEST_TOKEN": fabrikam}, "the org lists no tenants"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"THREATDESK_CONFIG": writeFile(t, tc.yaml)}
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := config.Load(envOf(env))
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), contoso, "tokens never appear in errors")
		})
	}
}

func TestTimezoneAndOncall(t *testing.T) {
	t.Parallel()
	const base = `
orgs:
  - id: contoso
    slack: {team: T0CONTOSO, channels: [C0CONTOSOSOC]}
desk:
  slack: {channel: C0EXPERTDESK}
experts:
  slack: [U0EXPERT1, U0EXPERT2]
  discord: ["100000000000000001"]
`
	p := writeFile(t, "timezone: Europe/London\n"+base+`
oncall:
  handover: "Mon 09:00"
  rotation:
    - slack: U0EXPERT1
    - discord: "100000000000000001"
    - slack: U0EXPERT2
`)
	c, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": p}))
	require.NoError(t, err)
	f := c.File
	require.Equal(t, "Europe/London", f.Location.String())
	require.Equal(t, oncall.Handover{Period: oncall.Weekly, Weekday: time.Monday, Hour: 9}, f.Oncall.Handover)
	require.Equal(t, []oncall.Member{
		{Platform: "slack", UserID: "U0EXPERT1"}, {Platform: "discord", UserID: "100000000000000001"}, {Platform: "slack", UserID: "U0EXPERT2"},
	}, f.Oncall.Rotation)
	require.Equal(t, 15*time.Minute, f.Oncall.PageAfter, "page_after defaults to 15m")

	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown zone", "timezone: Europe/Londn\n" + base, []string{`timezone "Europe/Londn" is not a time zone name: use an IANA name such as Europe/London`}},
		{"host zone", "timezone: Local\n" + base, []string{`timezone "Local" is not a time zone name`}},
		{"rotation member not an expert", base + "oncall:\n  handover: daily 09:00\n  rotation: [{slack: U0EXPERT1}, {slack: U0STRANGER}, {discord: \"100000000000000009\"}]\n",
			[]string{"oncall.rotation[1]: slack user U0STRANGER is not one of the experts: add them to experts.slack, or remove them from the rotation",
				"oncall.rotation[2]: discord user 100000000000000009 is not one of the experts: add them to experts.discord"}},
		{"handover syntax", base + "oncall:\n  handover: Mon 9am\n", []string{`oncall.handover "Mon 9am" is not a hand-over`}},
		{"oncall problems reported with the others", "timezone: Mars/Olympus\n" + base + "hunting:\n  notify_score: 500\noncall:\n  rotation: [{slack: U0EXPERT1}, {slack: U0EXPERT1}]\n  page_after: 10s\n",
			[]string{"timezone \"Mars/Olympus\"", "hunting.notify_score 500", "oncall.handover is missing", "oncall.rotation[1]: slack:U0EXPERT1 is already oncall.rotation[0]", "oncall.page_after 10s is too short"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, tc.yaml)}))
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// TestOneRuleEverywhere: where two places once held different rules for a
// value, the documented one holds at load, with one message, and the other
// side is refused.
func TestOneRuleEverywhere(t *testing.T) {
	t.Parallel()
	const desk = "desk:\n  slack:\n    channel: C0DESK\n"
	for _, tc := range []struct {
		name string
		yaml string
		env  map[string]string
		want string // "" = loads
	}{
		// README: an org id is lower-case letters, digits and dashes.
		{name: "org id with an underscore", yaml: "orgs:\n  - id: contoso_eu\n    slack: {team: T1AB, channels: [C1AB]}\n" + desk,
			want: `orgs[0].id "contoso_eu" must be lower-case letters, digits and dashes, e.g. contoso`},
		{name: "org id with a dash", yaml: "orgs:\n  - id: contoso-eu\n    slack: {team: T1AB, channels: [C1AB]}\n" + desk},
		// Discord ids: 15 to 21 digits, as every message says.
		{name: "16-digit guild", yaml: "orgs:\n  - id: a\n    discord: {guild: '1000000000000001', channels: ['1000000000000000002']}\n" + desk},
		{name: "22-digit guild", yaml: "orgs:\n  - id: a\n    discord: {guild: '1000000000000000000001', channels: ['1000000000000000002']}\n" + desk,
			want: `discord.guild "1000000000000000000001" must be a Discord guild id (a quoted number, 15 to 21 digits`},
		{name: "22-digit app id", env: map[string]string{"DISCORD_BOT_TOKEN": "abc", "DISCORD_APP_ID": "1000000000000000000009"},
			want: `DISCORD_APP_ID "1000000000000000000009" must be a numeric Discord id (a snowflake, 15 to 21 digits)`},
		// hunting once refused these only when the service was built.
		{name: "short correlation window", yaml: "hunting:\n  correlation_window: 30s\n", want: "hunting.correlation_window 30s is too short: use at least 1m"},
		{name: "too many items", yaml: "hunting:\n  max_items: 200000\n", want: "hunting.max_items 200000 must be between 1 and 100000"},
		{name: "org notify score 0", yaml: "orgs:\n  - id: a\n    notify_score: 0\n    slack: {team: T1AB, channels: [C1AB]}\n" + desk,
			want: "orgs[0] (a).notify_score 0 must be between 1 and 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			if tc.yaml != "" {
				env["THREATDESK_CONFIG"] = writeFile(t, tc.yaml)
			}
			for k, v := range tc.env {
				env[k] = v
			}
			_, err := config.Load(envOf(env))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, 1, strings.Count(err.Error(), tc.want), "one message, once")
		})
	}
}

// TestFileDecoding: the file's own rules, kept by internal/config for every
// package's block: durations with days, unknown keys anywhere, and every
// problem reported at once, in line order.
func TestFileDecoding(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
cases:
  reopen_window: 3d
  sla:
    high: {first_response: 30m, conclusion: 2d}
hunting:
  group_wait: 1m
  graph: {interval: 90s, tenants: []}
oncall:
  page_after: 1h
`)
	f, err := config.LoadFile(p)
	require.NoError(t, err)
	require.Equal(t, 72*time.Hour, f.Cases.ReopenWindow)
	require.Equal(t, casework.Target{FirstResponse: 30 * time.Minute, Conclusion: 48 * time.Hour}, f.Cases.SLA.High)
	require.Equal(t, time.Minute, f.Hunting.GroupWait)
	require.Equal(t, 90*time.Second, f.Hunting.Graph.Interval)
	require.Equal(t, time.Hour, f.Oncall.PageAfter)

	_, err = config.ParseFile([]byte(`orgs:
  - id: a
    tenant: [x]
    credits_per_quarter: lots
cases:
  reopen_window: 14
hunting:
  grop_wait: 1m
  group_interval: soon
oncall:
  page_after: 2w
`))
	require.Error(t, err)
	want := []string{
		"line 3: orgs[0].tenant is not a setting (did you mean orgs[0].tenants?)",
		`line 4: orgs[0].credits_per_quarter: "lots" must be a whole number`,
		"line 6: cases.reopen_window: a duration must be a string such as 30s, 5m, 4h or 2d",
		"line 8: hunting.grop_wait is not a setting (did you mean hunting.group_wait?)",
		`line 9: hunting.group_interval: "soon" is not a duration`,
		`line 11: oncall.page_after: "2w" is not a duration`,
	}
	last := -1
	for _, w := range want {
		i := strings.Index(err.Error(), w)
		require.Greater(t, i, last, "%q after the problems before it in %s", w, err)
		last = i
	}
}

// TestEveryPackageReportsAtOnce: one load reports the problems of the
// environment, the adapters and every package's block together.
func TestEveryPackageReportsAtOnce(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
timezone: Mars/Olympus
orgs:
  - id: Contoso
    tenants: [contoso.com]
    credits_per_quarter: 99
    slack: {team: T1AB, channels: [C1AB]}
desk:
  slack: {channel: C0DESK}
cases:
  sla: {warn_at: 2}
hunting:
  notify_score: 101
oncall:
  rotation: [{slack: U0NOBODY}]
`)
	_, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": p, "THREATDESK_LOG_FORMAT": "xml", "SLACK_APP_TOKEN": "xapp-1"}))
	for _, w := range []string{
		"THREATDESK_LOG_FORMAT", "SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not", `orgs[0].id "Contoso"`,
		`"contoso.com" is not a tenant id`, "credits_per_quarter 99 must be between 0", "cases.sla.warn_at 2",
		"hunting.notify_score 101 must be between 1 and 100", "oncall.handover is missing",
		"oncall.rotation[0]: slack user U0NOBODY is not one of the experts", `timezone "Mars/Olympus"`,
	} {
		require.ErrorContains(t, err, w)
	}
}

// TestKeyProblemsDoNotHideTheRest: a bad duration or an unknown key is
// reported with the problems the checks find in the rest of the file, at
// once, each naming its key. (The checks ran only once the file decoded:
// an operator fixed one problem to be told of the next.) Reading the file
// again (a reload) reports the same.
func TestKeyProblemsDoNotHideTheRest(t *testing.T) {
	t.Parallel()
	p := writeFile(t, `
timezone: Mars/Olympus
cases:
  reopen_window: 2weeks
hunting:
  notify_score: 500
  grop_wait: 1m
`)
	want := []string{`cases.reopen_window: "2weeks" is not a duration`, "hunting.grop_wait is not a setting (did you mean hunting.group_wait?)",
		"hunting.notify_score 500 must be between 1 and 100", `timezone "Mars/Olympus"`}
	_, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": p}))
	for _, w := range want {
		require.ErrorContains(t, err, w)
	}
	c, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": writeFile(t, "cases:\n  reopen_window: 3d\n")}))
	require.NoError(t, err)
	c.ConfigPath = p
	_, err = c.ReadFile()
	for _, w := range want {
		require.ErrorContains(t, err, w)
	}

	// A missing file names its path once.
	_, err = config.Load(envOf(map[string]string{"THREATDESK_CONFIG": p + ".missing"}))
	require.Error(t, err)
	require.Equal(t, 1, strings.Count(err.Error(), p+".missing"), err.Error())
}

// TestDeliveryLeaseAndSLACheckInterval: both can be shortened (to their
// minimums), as a deployment that wants a dead replica's messages sent and
// SLA warnings posted sooner does.
func TestDeliveryLeaseAndSLACheckInterval(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "delivery:\n  lease: 5s\ncases:\n  sla:\n    check_interval: 1s\n")
	c, err := config.Load(envOf(map[string]string{"THREATDESK_CONFIG": p}))
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, c.File.Bot.Delivery.Lease)
	require.Equal(t, time.Second, c.File.Cases.SweepEvery)
}

// TestAddToSlackNeedsTheDesksWorkspace: with Add to Slack set up, customer
// workspaces join, and a Slack user id names a person only within its
// workspace; with the desk's workspace unnamed and one customer workspace
// configured, the experts' roles held in every workspace. Such a config is
// refused, at start and on reload, saying what to set.
func TestAddToSlackNeedsTheDesksWorkspace(t *testing.T) {
	t.Parallel()
	const want = "desk.slack.team is required with Add to Slack (SLACK_CLIENT_ID)"
	env := func(path string) map[string]string {
		return map[string]string{"THREATDESK_CONFIG": path, "SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s",
			"SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "secret", "THREATDESK_PUBLIC_URL": "https://threatdesk.example.com"}
	}
	_, err := config.Load(envOf(env(exampleFile)))
	require.ErrorContains(t, err, want)

	example, err := os.ReadFile(exampleFile)
	require.NoError(t, err)
	named := strings.Replace(string(example), "    channel: C0EXPERTDESK", "    team: T0PROVIDER\n    channel: C0EXPERTDESK", 1)
	require.NotEqual(t, string(example), named)
	path := writeFile(t, named)
	c, err := config.Load(envOf(env(path)))
	require.NoError(t, err)
	require.Equal(t, "T0PROVIDER", c.File.Bot.Desk.Slack.Team)

	// A reload that drops it is refused too.
	require.NoError(t, os.WriteFile(path, example, 0o600))
	_, err = c.ReadFile()
	require.ErrorContains(t, err, want)

	// A desk on Discord names no Slack workspace: staff listed by Slack id
	// would hold their roles in every customer workspace.
	discordDesk := strings.Replace(string(example), "  slack:\n    channel: C0EXPERTDESK", "  discord:\n    channel: \"222222222222222222\"", 1)
	require.NotEqual(t, string(example), discordDesk)
	_, err = config.Load(envOf(env(writeFile(t, discordDesk))))
	require.ErrorContains(t, err, "cannot be listed by Slack user id with Add to Slack (SLACK_CLIENT_ID) while the desk is on Discord")
}
