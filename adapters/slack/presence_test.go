package slack_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	adapter "github.com/threatdesk/threatdesk/adapters/slack"
	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/internal/secrets"
)

// TestPresent: the tracker's look-up of a person in chat. Someone in the
// channel is present; someone who left it is not, for that channel; a
// deactivated account is not present anywhere; an unknown user is not
// either. The channel's members are read in pages.
func TestPresent(t *testing.T) {
	t.Parallel()
	const team, soc = "T0PRES", "C0PRESSOC"
	users := []slackfake.User{{ID: "U0ANA", Name: "ana"}, {ID: "U0EVE", Name: "eve"}}
	var members []string
	for i := range 2500 { // three pages of 1000
		members = append(members, fmt.Sprintf("U0M%04d", i))
	}
	members = append(members, "U0ANA", "U0EVE")
	fake := slackfake.New(t, slackfake.Options{TeamID: team, Users: users,
		Channels: []slackfake.Channel{{ID: soc, Name: "soc", Members: members}}})
	opts := fake.Options()
	a, err := adapter.New(adapter.Config{BotToken: secrets.String(opts.BotToken), SigningSecret: secrets.String(opts.SigningSecret), APIURL: fake.APIURL()}, nil, nil, newRecorder())
	require.NoError(t, err)
	ctx := context.Background()
	present := func(user, channel string) bool {
		t.Helper()
		ok, err := a.Present(ctx, team, user, channel)
		require.NoError(t, err)
		return ok
	}
	require.True(t, present("U0ANA", soc), "on the last page")
	require.True(t, present("U0ANA", ""))

	fake.Leave(soc, "U0ANA")
	require.False(t, present("U0ANA", soc), "left the channel")
	require.True(t, present("U0ANA", ""), "still an active account")

	fake.Deactivate("U0EVE")
	require.False(t, present("U0EVE", ""), "deactivated")
	require.False(t, present("U0EVE", soc))
	require.False(t, present("U0NOBODY", ""), "unknown")
}
