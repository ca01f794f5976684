package discord_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// stubReloader answers reloads with a fixed report, audited and posted to
// the desk as cmd's reloader does, and records who asked.
type stubReloader struct {
	b  *bot.Bot
	by chan bot.ReloadBy
}

func (s *stubReloader) Reload(ctx context.Context, by bot.ReloadBy) (bot.ReloadReport, error) {
	s.by <- by
	rep := bot.ReloadReport{Applied: true, Changes: []string{"org northwind (Northwind) added: Discord 1 2"}, Summary: []string{"2 orgs"}}
	_, err := s.b.RecordReload(ctx, by, rep, nil)
	return rep, err
}

// TestAdminCommandsOverDiscord: on Discord, reload is an admin command in
// the admin group that reaches the reloader and answers what changed;
// install-link says clearly that it is for Slack only; a non-admin is
// refused.
func TestAdminCommandsOverDiscord(t *testing.T) {
	t.Parallel()
	f := newFlow(t, false)
	rl := &stubReloader{b: f.bot, by: make(chan bot.ReloadBy, 1)}
	f.bot.UseReloader(rl)
	require.NoError(t, f.bot.SetConfig(bot.Config{
		Orgs:     []bot.Org{{ID: "fabrikam", Name: "Fabrikam", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{channelID}}}},
		Desk:     bot.Desk{Discord: &bot.DiscordDesk{Guild: guildID, Channel: deskID}},
		Experts:  bot.UserIDs{Discord: []string{expertID}},
		Managers: bot.UserIDs{Discord: []string{managerID}},
		Admins:   bot.UserIDs{Discord: []string{managerID}},
	}))

	in, _ := f.command(analystID, channelID, "admin reload", nil)
	f.wait("a member is refused", f.answered(in, "Only threatdesk admins can reload the configuration"))
	require.Empty(t, rl.by)

	in, _ = f.command(managerID, deskID, "admin reload", nil)
	f.wait("the reload's answer", f.answered(in, "org northwind (Northwind) added"))
	by := testwait.WaitOrTimeout(t, rl.by, 5*time.Second, "the reloader's call")
	require.Equal(t, bot.ReloadBy{Platform: "discord", User: managerID, Name: "Max"}, by)

	// The desk's configuration message is posted, pinned, and the reload
	// noted in its thread.
	f.wait("the pinned configuration message", func() bool {
		pinned := f.dfake.Pinned(deskID)
		return len(pinned) == 1 && strings.Contains(text(pinned[0]), "Configuration") && strings.Contains(text(pinned[0]), "2 orgs")
	})
	f.wait("the reload's note in its thread", func() bool {
		for _, m := range f.dfake.AllMessages() {
			if m.ChannelID != deskID && strings.Contains(text(m), "org northwind (Northwind) added") && strings.Contains(text(m), "Max") {
				return true
			}
		}
		return false
	})

	in, _ = f.command(managerID, deskID, "admin install-link", map[string]any{"org": "fabrikam"})
	f.wait("install-link is Slack only", f.answered(in, "is for Slack only"))
}
