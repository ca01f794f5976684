package discord_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/bot"
)

// recordingSignIn is a case tracker that records whom it made links for.
type recordingSignIn struct {
	mu  sync.Mutex
	got []bot.WebUser
}

func (r *recordingSignIn) SignInLink(_ context.Context, u bot.WebUser) (bot.WebLink, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, u)
	return bot.WebLink{URL: fmt.Sprintf("https://threatdesk.example.com/web/login/token%d", len(r.got)),
		ExpiresAt: time.Date(2026, 3, 18, 9, 40, 0, 0, time.UTC)}, nil
}

func (r *recordingSignIn) all() []bot.WebUser {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bot.WebUser(nil), r.got...)
}

// TestWebSignInOverDiscord: "/experts web" is a registered subcommand; it
// is answered in the interaction's response, ephemeral, with the sign-in
// link as a link, made for the person's roles where they typed it.
func TestWebSignInOverDiscord(t *testing.T) {
	t.Parallel()
	var sub bool
	for _, o := range discord.Commands()[0].Options {
		sub = sub || o.Name == "web"
	}
	require.True(t, sub, "/experts web is registered")
	f := newFlow(t, false)
	signer := &recordingSignIn{}
	f.bot.SetWebSignIn(signer)

	answer := func(user, channel string) (int, string) {
		t.Helper()
		_, cb := f.command(user, channel, "web", nil)
		require.Equal(t, 4, cb.Type, "answered at once (CHANNEL_MESSAGE_WITH_SOURCE)")
		var d struct {
			Flags   int    `json:"flags"`
			Content string `json:"content"`
			Embeds  []struct {
				Title       string `json:"title"`
				Description string `json:"description"`
			} `json:"embeds"`
			AllowedMentions *struct {
				Parse []string `json:"parse"`
			} `json:"allowed_mentions"`
		}
		require.NoError(t, json.Unmarshal(cb.Data, &d), string(cb.Data))
		parts := []string{d.Content}
		for _, e := range d.Embeds {
			parts = append(parts, e.Title, e.Description)
		}
		return d.Flags, strings.Join(parts, "\n")
	}
	flags, text := answer(analystID, channelID)
	require.Equal(t, 64, flags&64, "ephemeral")
	require.Contains(t, text, "[Open the case tracker](https://threatdesk.example.com/web/login/token1)")
	require.Contains(t, text, "Fabrikam's cases")
	got := signer.all()
	require.Len(t, got, 1)
	require.Equal(t, bot.Discord, got[0].User.Platform)
	require.Equal(t, analystID, got[0].User.ID)
	require.Equal(t, channelID, got[0].Channel)
	require.Equal(t, []bot.Role{bot.RoleMember}, got[0].Roles)
	require.Equal(t, "fabrikam", got[0].Org)

	flags, text = answer(expertID, deskID)
	require.Equal(t, 64, flags&64)
	require.Contains(t, text, "every org's cases")
	require.Equal(t, []bot.Role{bot.RoleExpert}, signer.all()[1].Roles)
}
