package discord_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// stubReloader answers reloads with a fixed report and records who asked.
type stubReloader struct{ by chan bot.ReloadBy }

func (s *stubReloader) Reload(_ context.Context, by bot.ReloadBy) (bot.ReloadReport, error) {
	s.by <- by
	return bot.ReloadReport{Applied: true, Changes: []string{"org northwind (Northwind) added: Discord 1 2"}}, nil
}

// TestAdminCommandsOverDiscord: on Discord, reload is an admin command in
// the admin group that reaches the reloader and answers what changed;
// install-link says clearly that it is for Slack only; a non-admin is
// refused.
func TestAdminCommandsOverDiscord(t *testing.T) {
	t.Parallel()
	f := newFlow(t, false)
	rl := &stubReloader{by: make(chan bot.ReloadBy, 1)}
	f.bot.UseReloader(rl)
	require.NoError(t, f.bot.SetConfig(bot.Config{
		Orgs:     []bot.Org{{ID: "fabrikam", Name: "Fabrikam", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{channelID}}}},
		Desk:     bot.Desk{Discord: &bot.DiscordDesk{Guild: guildID, Channel: deskID}},
		Experts:  bot.UserIDs{Discord: []string{expertID}},
		Managers: bot.UserIDs{Discord: []string{managerID}},
		Admins:   bot.UserIDs{Discord: []string{managerID}},
	}))

	in, _ := f.command(analystID, channelID, "admin reload", nil)
	f.wait("a member is refused", f.answered(in, "needs the role admin"))
	require.Empty(t, rl.by)

	in, _ = f.command(managerID, deskID, "admin reload", nil)
	f.wait("the reload's answer", f.answered(in, "org northwind (Northwind) added"))
	by := testwait.WaitOrTimeout(t, rl.by, 5*time.Second, "the reloader's call")
	require.Equal(t, bot.ReloadBy{Platform: "discord", User: managerID, Name: "Max"}, by)

	in, _ = f.command(managerID, deskID, "admin install-link", map[string]any{"org": "fabrikam"})
	f.wait("install-link is Slack only", f.answered(in, "is for Slack only"))
}
