package bot

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// TestSlackUsageHintNamesCommands: every verb the Slack app's usage hint
// (adapters/slack/manifest.yaml) shows under /experts is a command, so
// the hint never sends someone to "There is no /experts …". (The hint
// lacked every verb added since the first round.)
func TestSlackUsageHintNamesCommands(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../adapters/slack/manifest.yaml")
	require.NoError(t, err)
	var m struct {
		Features struct {
			SlashCommands []struct {
				UsageHint string `yaml:"usage_hint"`
			} `yaml:"slash_commands"`
		} `yaml:"features"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &m))
	require.Len(t, m.Features.SlashCommands, 1)
	hint := m.Features.SlashCommands[0].UsageHint
	var verbs []string
	for _, part := range strings.Split(hint, "|") {
		words := strings.Fields(part)
		require.NotEmpty(t, words, "an empty entry in %q", hint)
		verbs = append(verbs, words[0])
		_, uerr := parse(Command{Name: words[0]})
		if uerr != nil {
			require.NotContains(t, uerr.Error(), "There is no /experts", "%q in the usage hint", words[0])
		}
	}
	for _, v := range []string{vAsk, vStatus, vCases, vUpload, vReport, vExport, vWeb, vOncall, vHelp} {
		require.Contains(t, verbs, v, "a member's command the hint shows")
	}
}
