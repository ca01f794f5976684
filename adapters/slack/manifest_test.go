package slack_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	adapter "github.com/threatdesk/threatdesk/adapters/slack"
)

// TestManifest checks the app manifest asks for what the adapter uses.
func TestManifest(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("manifest.yaml")
	require.NoError(t, err)
	var m struct {
		Features struct {
			AppHome struct {
				HomeTab bool `yaml:"home_tab_enabled"`
			} `yaml:"app_home"`
			SlashCommands []struct {
				Command      string `yaml:"command"`
				ShouldEscape bool   `yaml:"should_escape"`
			} `yaml:"slash_commands"`
		} `yaml:"features"`
		OAuth struct {
			Scopes struct {
				Bot []string `yaml:"bot"`
			} `yaml:"scopes"`
		} `yaml:"oauth_config"`
		Settings struct {
			Events struct {
				BotEvents []string `yaml:"bot_events"`
			} `yaml:"event_subscriptions"`
			Interactivity struct {
				Enabled bool `yaml:"is_enabled"`
			} `yaml:"interactivity"`
			SocketMode bool `yaml:"socket_mode_enabled"`
		} `yaml:"settings"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &m))
	require.Len(t, m.Features.SlashCommands, 1)
	require.Equal(t, "/experts", m.Features.SlashCommands[0].Command)
	require.True(t, m.Features.SlashCommands[0].ShouldEscape, "mentions must arrive as <@U123|name>")
	require.ElementsMatch(t, []string{"commands", "chat:write", "channels:history", "groups:history", "im:history", "users:read",
		"files:write", "im:write", "files:read", "channels:read", "groups:read", "pins:write"}, m.OAuth.Scopes.Bot)
	require.ElementsMatch(t, adapter.BotScopes, m.OAuth.Scopes.Bot, "Add to Slack asks for the manifest's scopes")
	require.ElementsMatch(t, []string{"message.channels", "message.groups", "member_joined_channel", "app_home_opened", "app_uninstalled", "tokens_revoked", "channel_shared", "channel_unshared"}, m.Settings.Events.BotEvents)
	require.True(t, m.Features.AppHome.HomeTab, "the App Home tab shows what threatdesk does")
	require.True(t, m.Settings.Interactivity.Enabled)
	require.True(t, m.Settings.SocketMode)
}
