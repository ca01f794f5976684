package bot

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParseReportsGrammar: report, cases search, export and verify as
// typed on Slack (words) and sent by Discord (options).
func TestParseReportsGrammar(t *testing.T) {
	t.Parallel()
	slack := func(text string) Command {
		words := tokenize(text)
		c := Command{User: User{Platform: Slack}, Name: words[0], Args: words[1:]}
		if len(text) > len(words[0]) {
			c.Text = text[len(words[0])+1:]
		}
		return c
	}
	discord := func(name string, opts map[string]string) Command {
		return Command{User: User{Platform: Discord}, Name: name, Options: opts}
	}
	tests := []struct {
		name string
		c    Command
		want request
		bad  string
	}{
		{"report", slack("report"), request{verb: vReport}, ""},
		{"report org and period", slack("report contoso week"), request{verb: vReport, org: "contoso", period: PeriodWeek}, ""},
		{"report period then org", slack("report Month org:contoso"), request{verb: vReport, org: "contoso", period: PeriodMonth}, ""},
		{"report two periods", slack("report week month"), request{}, "Give one period"},
		{"report junk", slack("report contoso fabrikam"), request{}, `"fabrikam" is neither a period`},
		{"report on discord", discord("report", map[string]string{"org": "Contoso", "period": "quarter"}), request{verb: vReport, org: "contoso", period: PeriodQuarter}, ""},
		{"report bad period on discord", discord("report", map[string]string{"period": "year"}), request{}, `"year" is not a period`},
		{"search words", slack(`cases search "lateral movement" -test`), request{verb: vCases, search: `"lateral movement" -test`}, ""},
		{"search a Slack mention", Command{User: User{Platform: Slack}, Name: "cases", Args: []string{"search", "U0ALICE"}, Text: "search @alice"},
			request{verb: vCases, search: "@U0ALICE"}, ""},
		{"search a name that is not a mention", slack("cases search @alice"), request{verb: vCases, search: "@alice"}, ""},
		{"search nothing", slack("cases search"), request{}, "What should I look for?"},
		{"search on discord", discord("cases", map[string]string{"search": " EOD-12 ", "org": "Fabrikam"}), request{verb: vCases, search: "EOD-12", org: "fabrikam"}, ""},
		{"cases still lists", slack("cases mine"), request{verb: vCases, filter: "mine"}, ""},
		{"export", slack("export eod-12"), request{verb: vExport, ref: "EOD-12"}, ""},
		{"export bad", slack("export twelve"), request{}, "is not a case reference"},
		{"verify on discord", discord("verify", map[string]string{"case": "EOD-3"}), request{verb: vVerify, ref: "EOD-3"}, ""},
		{"verify without a case", slack("verify"), request{}, "Which case? Usage: /experts verify EOD-1042"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parse(tt.c)
			if tt.bad != "" {
				require.NotNil(t, err)
				require.Contains(t, err.msg, tt.bad)
				return
			}
			require.Nil(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
