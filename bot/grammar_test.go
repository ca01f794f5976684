package bot

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

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
		{"incident ../etc", request{}, "an incident id is threatdesk's incident number"},
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

// TestFreeTextAsTyped: a question, note or summary typed on Slack keeps its
// quotes, mentions (as @name) and spacing; one quoted whole loses its
// quotes. It was rebuilt from the split arguments: quotes dropped, mentions
// as raw ids, a space put before "?".
func TestFreeTextAsTyped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c    Command
		want string
	}{
		{Command{Name: "ask", Args: []string{"is", `C:\Temp\a  b.exe`, "run", "by", "U0ALICE", "from", "C0SOC", "really", "?"},
			Text: `is “C:\Temp\a  b.exe” run by @alice from #soc "really"?`}, `is “C:\Temp\a  b.exe” run by @alice from #soc "really"?`},
		{Command{Name: "alert", Args: []string{"da637551227677560813_-961444813", "is this lateral movement?"},
			Text: `da637551227677560813_-961444813 "is this lateral movement?"`}, "is this lateral movement?"},
		{Command{Name: "device", Args: []string{"WS-01", "beaconing", "to", "U0BOB"}, Text: "WS-01  beaconing to @bob"}, "beaconing to @bob"},
		{Command{Name: "note", Args: []string{"EOD-3", "called", "them", "at", "9"}, Text: `EOD-3 called "them" at 9`}, `called "them" at 9`},
		{Command{Name: "ask", Args: []string{"a", "b"}}, "a b"}, // no readable text: the arguments
	} {
		r, uerr := parse(tc.c)
		require.Nil(t, uerr, "%+v", tc.c)
		require.Equal(t, tc.want, r.text, "%+v", tc.c)
	}
}
