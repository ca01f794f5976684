package bot

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func unitConfig() Config {
	return Config{
		Orgs: []Org{
			{ID: "contoso", Name: "Contoso", Slack: &SlackPlace{Team: "T0CONTOSO", Channels: []string{"C0CONTOSOSOC"}}},
			{ID: "fabrikam", Name: "Fabrikam", Discord: &DiscordPlace{Guild: "1000000000000000001", Channels: []string{"1000000000000000002"}}},
		},
		Desk:     Desk{Slack: &SlackDesk{Channel: "C0EXPERTDESK"}},
		Experts:  UserIDs{Slack: []string{"U0EXPERT1"}},
		Managers: UserIDs{Slack: []string{"U0MANAGER1"}},
		Admins:   UserIDs{Slack: []string{"U0ADMIN1"}},
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*Config)
		want string // "" = valid
	}{
		{"the README example", func(*Config) {}, ""},
		{"no orgs", func(c *Config) { c.Orgs = nil }, "orgs: none configured"},
		{"bad org id", func(c *Config) { c.Orgs[0].ID = "Contoso Ltd" }, `orgs[0].id "Contoso Ltd" must be lower-case letters, digits and dashes`},
		// README: lower-case letters, digits, dashes. An underscore was
		// once allowed here and refused by internal/config.
		{"underscore in org id", func(c *Config) { c.Orgs[0].ID = "contoso_eu" }, `orgs[0].id "contoso_eu" must be lower-case letters, digits and dashes`},
		{"dash in org id", func(c *Config) { c.Orgs[0].ID = "contoso-eu" }, ""},
		{"duplicate org", func(c *Config) { c.Orgs[1].ID = "contoso" }, "orgs[1] (contoso).id is used by two orgs"},
		{"org without a place", func(c *Config) { c.Orgs[0].Slack = nil }, "orgs[0] (contoso) has no chat"},
		{"channel name instead of id", func(c *Config) { c.Orgs[0].Slack.Channels = []string{"#soc"} }, "not a #name"},
		{"no channels", func(c *Config) { c.Orgs[0].Slack.Channels = nil }, "orgs[0] (contoso).slack.channels is empty"},
		{"bad team", func(c *Config) { c.Orgs[0].Slack.Team = "contoso" }, `slack.team "contoso" must be a Slack team id such as T0123ABCD`},
		{"bad guild", func(c *Config) { c.Orgs[1].Discord.Guild = "fab" }, `discord.guild "fab" must be a Discord guild id (a quoted number, 15 to 21 digits`},
		// The Discord id rule is 15 to 21 digits, as its messages say (one
		// message once said 17-20 while the check took 15-21).
		{"15-digit guild", func(c *Config) { c.Orgs[1].Discord.Guild = "100000000000001" }, ""},
		{"21-digit guild", func(c *Config) { c.Orgs[1].Discord.Guild = "100000000000000000001" }, ""},
		{"14-digit guild", func(c *Config) { c.Orgs[1].Discord.Guild = "10000000000001" }, "15 to 21 digits"},
		{"22-digit guild", func(c *Config) { c.Orgs[1].Discord.Guild = "1000000000000000000001" }, "15 to 21 digits"},
		{"22-digit channel", func(c *Config) { c.Orgs[1].Discord.Channels = []string{"1000000000000000000002"} }, `discord.channels: "1000000000000000000002" must be a Discord channel id (a quoted number, 15 to 21 digits`},
		{"channel in two orgs", func(c *Config) {
			c.Orgs[1].Slack = &SlackPlace{Team: "T0CONTOSO", Channels: []string{"C0CONTOSOSOC"}}
		}, "C0CONTOSOSOC already belongs to org contoso"},
		{"no desk", func(c *Config) { c.Desk = Desk{} }, "desk is missing"},
		{"two desks", func(c *Config) {
			c.Desk.Discord = &DiscordDesk{Guild: "1000000000000000001", Channel: "1000000000000000003"}
		}, "desk: set either desk.slack or desk.discord, not both"},
		{"desk is an org channel", func(c *Config) { c.Desk.Slack.Channel = "C0CONTOSOSOC" }, "give the experts a channel of their own"},
		{"bad expert id", func(c *Config) { c.Experts.Slack = []string{"alice"} }, `experts.slack: "alice" must be a Slack user id`},
		{"bad discord manager id", func(c *Config) { c.Managers.Discord = []string{"1234"} }, `managers.discord: "1234" must be a Discord user id (a quoted number, 15 to 21 digits`},
		{"no experts", func(c *Config) { c.Experts = UserIDs{} }, "nobody can take a case"},
		{"short lease", func(c *Config) { c.Delivery.Lease = 1 }, "delivery.lease"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := unitConfig().WithDefaults()
			tt.mod(&c)
			err := errors.Join(c.Validate(), c.ready())
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestConfigDefaultsAndGuilds(t *testing.T) {
	t.Parallel()
	c := unitConfig()
	c.Orgs[0].Name = ""
	c.Desk = Desk{Discord: &DiscordDesk{Guild: "1000000000000000009", Channel: "1000000000000000003"}}
	d := c.WithDefaults()
	require.Equal(t, "contoso", d.Orgs[0].Name, "the name defaults to the id")
	require.Empty(t, c.Orgs[0].Name, "WithDefaults does not change its receiver's orgs")
	require.Equal(t, []string{"1000000000000000001", "1000000000000000009"}, d.DiscordGuilds())
	d.Desk.Discord.Guild = "1000000000000000001"
	require.Equal(t, []string{"1000000000000000001"}, d.DiscordGuilds(), "each guild once")
}

func TestTokenize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{`alert da6 "is this bad?"`, []string{"alert", "da6", "is this bad?"}},
		{`ask “curly quotes work”`, []string{"ask", "curly quotes work"}},
		{`  spaced   out  `, []string{"spaced", "out"}},
		{`note EOD-1 ""`, []string{"note", "EOD-1", ""}},
		{``, nil},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, tokenize(tt.in), tt.in)
	}
}

// TestParse covers every command's grammar: the happy path and the answer
// to bad input, which says what a valid one looks like.
func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text string
		want request
		bad  string // expected part of the bad-input answer
	}{
		{"", request{verb: vHelp}, ""},
		{"help", request{verb: vHelp}, ""},
		{"ask", request{verb: vAsk, kind: SubjectNone}, ""},
		{`ask "who is APT29?"`, request{verb: vAsk, kind: SubjectNone, text: "who is APT29?", hasText: true}, ""},
		{"alert da637551227677560813_-961444813 lateral?", request{verb: vAlert, kind: SubjectAlert, id: "da637551227677560813_-961444813", text: "lateral?", hasText: true}, ""},
		{"alert", request{}, "Which alert?"},
		{"alert <script>", request{}, "an alert id looks like da637551227677560813_-961444813"},
		{"device 111E6DD8C833C8A052EA231EC1B19ADAF497B625", request{verb: vDevice, kind: SubjectDevice, id: "111e6dd8c833c8a052ea231ec1b19adaf497b625"}, ""},
		{"device ws-017.contoso.local", request{verb: vDevice, kind: SubjectDevice, id: "ws-017.contoso.local"}, ""},
		{"device bad_host!", request{}, "a Defender device id (40 hex digits"},
		{"file 4b6f1c2d8a9e0f1a2b3c4d5e6f708192a3b4c5d6", request{verb: vFile, kind: SubjectFile, id: "4b6f1c2d8a9e0f1a2b3c4d5e6f708192a3b4c5d6"}, ""},
		{"file " + strings.Repeat("ab", 32), request{verb: vFile, kind: SubjectFile, id: strings.Repeat("ab", 32)}, ""},
		{"file d41d8cd98f00b204e9800998ecf8427e", request{}, "looks like an MD5"},
		{"file xyz", request{}, "SHA-1 (40 hex digits) or SHA-256 (64 hex digits)"},
		{"incident 28282 why?", request{verb: vIncident, kind: SubjectIncident, id: "28282", text: "why?", hasText: true}, ""},
		{"incident ../etc", request{}, "an incident id is the id on the notification card"},
		{"status EOD-12", request{verb: vStatus, ref: "EOD-12"}, ""},
		{"status eod12", request{verb: vStatus, ref: "EOD-12"}, ""},
		{"status 12", request{verb: vStatus, ref: "EOD-12"}, ""},
		{"status", request{}, "a case reference looks like EOD-1042"},
		{"status XYZ-1", request{}, `"XYZ-1" is not a case reference`},
		{"cases", request{verb: vCases, filter: "open"}, ""},
		{"cases breaching", request{verb: vCases, filter: "breaching"}, ""},
		{"cases all fabrikam", request{verb: vCases, filter: "all", org: "fabrikam"}, ""},
		{"cases urgent!", request{}, "open, mine, breaching or all"},
		{"credits", request{verb: vCredits}, ""},
		{"take", request{verb: vTake}, ""},
		{"take EOD-3", request{verb: vTake, ref: "EOD-3"}, ""},
		{"take three", request{}, "Usage: /experts take"},
		{"assign EOD-3 <@U0EXPERT2|ed>", request{verb: vAssign, ref: "EOD-3", user: "U0EXPERT2"}, ""},
		{"assign EOD-3 U0EXPERT2", request{verb: vAssign, ref: "EOD-3", user: "U0EXPERT2"}, ""},
		{"assign EOD-3", request{}, "Usage: /experts assign EOD-1042 @expert"},
		{"assign EOD-3 ed", request{}, "mention the expert"},
		{`more-info EOD-3 "process tree"`, request{verb: vMoreInfo, ref: "EOD-3", text: "process tree", hasText: true}, ""},
		{"more-info", request{}, "Usage: /experts more-info EOD-1042"},
		{"sample EOD-3", request{verb: vSample, ref: "EOD-3"}, ""},
		{"more-time EOD-3 waiting on sandbox", request{verb: vMoreTime, ref: "EOD-3", text: "waiting on sandbox", hasText: true}, ""},
		{"conclude EOD-3", request{verb: vConclude, ref: "EOD-3"}, ""},
		{"resolve EOD-3 benign", request{verb: vConclude, ref: "EOD-3", text: "benign", hasText: true}, ""},
		{"note EOD-3 looks like Cobalt Strike", request{verb: vNote, ref: "EOD-3", text: "looks like Cobalt Strike", hasText: true}, ""},
		{"note EOD-3", request{}, "A note needs its text"},
		{"sample-notification", request{verb: vSampleNotify}, ""},
		{"frobnicate", request{}, "There is no /experts frobnicate"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			t.Parallel()
			words := tokenize(tt.text)
			c := Command{User: User{Platform: Slack, ID: "U1"}}
			if len(words) > 0 {
				c.Name, c.Args = words[0], words[1:]
			}
			got, err := parse(c)
			if tt.bad != "" {
				require.NotNil(t, err, "want a bad-input answer")
				require.Contains(t, err.msg, tt.bad)
				return
			}
			require.Nil(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseDiscordOptions(t *testing.T) {
	t.Parallel()
	got, err := parse(Command{User: User{Platform: Discord}, Name: "assign", Options: map[string]string{"case": "EOD-4", "user": "1000000000000000009"}})
	require.Nil(t, err)
	require.Equal(t, request{verb: vAssign, ref: "EOD-4", user: "1000000000000000009"}, got)
	got, err = parse(Command{User: User{Platform: Discord}, Name: "file", Options: map[string]string{"id": "zz"}})
	require.NotNil(t, err)
	require.Contains(t, err.msg, "SHA-256")
	_ = got
}

func TestCutRunes(t *testing.T) {
	t.Parallel()
	require.Equal(t, "short", cut("short", 10))
	s := strings.Repeat("é", 20) + "🙂🙂"
	got := cut(s, 10)
	require.True(t, utf8.ValidString(got))
	require.Equal(t, 10, utf8.RuneCountInString(got))
	require.True(t, strings.HasSuffix(got, "…"))
	require.Equal(t, "…", cut("🙂🙂🙂", 1))
}

// TestPermissionTable has one case per row of the permission table, for
// each kind of caller: a member of an org (in its channel), an expert and a
// manager (on the desk), an admin, and a stranger.
func TestPermissionTable(t *testing.T) {
	t.Parallel()
	b := &Bot{cfg: unitConfig()}
	callers := map[string]who{
		"member":   b.identify(User{Platform: Slack, Workspace: "T0CONTOSO", ID: "U0ANALYST"}, "C0CONTOSOSOC", nil),
		"expert":   b.identify(User{Platform: Slack, ID: "U0EXPERT1"}, "C0EXPERTDESK", nil),
		"manager":  b.identify(User{Platform: Slack, ID: "U0MANAGER1"}, "C0EXPERTDESK", nil),
		"admin":    b.identify(User{Platform: Slack, ID: "U0ADMIN1"}, "C0RANDOM", nil),
		"stranger": b.identify(User{Platform: Slack, ID: "U0NOBODY"}, "C0RANDOM", nil),
	}
	want := map[op][]string{
		opOpen:         {"member"},
		opStatus:       {"member", "expert", "manager"},
		opCases:        {"member", "expert", "manager"},
		opCasesAnyOrg:  {"expert", "manager"},
		opCredits:      {"member", "manager"},
		opHelp:         {"member", "expert", "manager", "admin"},
		opTake:         {"expert"},
		opAssign:       {"expert", "manager"},
		opExpertStatus: {"expert"},
		opNote:         {"expert"},
		opSampleNotify: {"admin"},
		opAddDetails:   {"member"},
		opClose:        {"member", "manager"},
		opReopen:       {"member", "manager"},
		opWithdraw:     {"member"},
		opAcknowledge:  {"member"},
		opShowScope:    {"member", "expert", "manager"},
		opRelayAsker:   {"member"},
		opRelayExpert:  {"expert"},
	}
	require.Len(t, want, len(permissions), "every row of the table has a test")
	for o, allowed := range want {
		t.Run(string(o), func(t *testing.T) {
			t.Parallel()
			for name, w := range callers {
				ok := false
				for _, a := range allowed {
					ok = ok || a == name
				}
				require.Equal(t, ok, w.may(o), "%s may %s", name, o)
			}
		})
	}
}

func TestIdentifyTenancy(t *testing.T) {
	t.Parallel()
	b := &Bot{cfg: unitConfig()}
	w := b.identify(User{Platform: Discord, Workspace: "1000000000000000001", ID: "1000000000000000077"}, "1000000000000000002", nil)
	require.Equal(t, "fabrikam", w.org.ID)
	s, _ := w.scope()
	require.Equal(t, Scope{Org: "fabrikam"}, s)
	// The same channel id under another guild is not Fabrikam's.
	w = b.identify(User{Platform: Discord, Workspace: "1000000000000000099", ID: "1000000000000000077"}, "1000000000000000002", nil)
	require.Nil(t, w.org)
	// A Discord thread of an org channel speaks for the org.
	th := &Ref{Platform: Discord, Channel: "1000000000000000002", Message: "1"}
	w = b.identify(User{Platform: Discord, Workspace: "1000000000000000001", ID: "1000000000000000077"}, "1000000000000000555", th)
	require.Equal(t, "fabrikam", w.org.ID)
}

// TestCreditsEventRendersNothing: a credits change is bookkeeping; it must
// render to no message (and never block its case's stream).
func TestCreditsEventRendersNothing(t *testing.T) {
	t.Parallel()
	cw := &CaseworkCases{}
	ev, ok, err := cw.DecodeEvent("case.credits_changed", []byte(`{"ref":"EOD-1","org":"contoso","delta":-1,"reason":"opened"}`))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, CaseEvent{Kind: CaseCredits, Ref: "EOD-1", Detail: "opened"}, ev)
	b := &Bot{cfg: unitConfig(), cases: cw}
	parts, err := b.renderCase(t.Context(), ev)
	require.NoError(t, err)
	require.Empty(t, parts)
}

func TestParagraphsCutLongUserText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("ø", 5000) + "\n" + strings.Repeat("line\n", 100)
	ls := paragraphs(long)
	total := 0
	for _, l := range ls {
		for _, s := range l {
			require.True(t, s.Untrusted)
			total += utf8.RuneCountInString(s.Text)
		}
	}
	require.LessOrEqual(t, total, maxTextRunes)
	require.True(t, strings.HasSuffix(ls[len(ls)-1][0].Text, "…"))
	ls = paragraphs(strings.Repeat("x\n", 100))
	require.Len(t, ls, maxParagraphs)
}
