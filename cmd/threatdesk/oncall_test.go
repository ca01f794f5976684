package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/slack/slackfake"
	"github.com/threatdesk/threatdesk/internal/testwait"
)

// TestServeWiresTheRotation: the service as configured by the file alone
// knows the rotation and the time zone: /experts oncall names the expert
// on call and shows the hand-over in the configured zone, and a new
// high-priority case mentions them on the desk card and sends them a
// direct message with a link to it.
func TestServeWiresTheRotation(t *testing.T) {
	t.Parallel()
	fake := slackfake.New(t, slackfake.Options{
		TeamID:   "T0CONTOSO",
		Channels: []slackfake.Channel{{ID: "C0CONTOSOSOC", Name: "soc"}, {ID: "C0EXPERTDESK", Name: "expert-desk"}},
		Users:    []slackfake.User{{ID: "U0ANALYST1", Name: "alice", DisplayName: "Alice"}, {ID: "U0EXPERT1", Name: "eve", DisplayName: "Eve"}},
	})
	cfgPath := filepath.Join(t.TempDir(), "threatdesk.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("timezone: Asia/Tokyo\n"+e2eConfig+`
oncall:
  handover: daily 09:00
  rotation:
    - slack: U0EXPERT1
`), 0o600))
	ctx, _, _ := serveOverSlack(t, fake, cfgPath, nil)

	_, err := fake.Command(ctx, slackfake.SlashCommand{Text: "oncall", UserID: "U0EXPERT1", ChannelID: "C0EXPERTDESK"})
	require.NoError(t, err)
	testwait.For(t, 20*time.Second, "the on-call answer", func() bool {
		for _, r := range fake.Responses() {
			if strings.Contains(string(r.Blocks), "Eve") && strings.Contains(string(r.Blocks), "09:00 Asia/Tokyo") {
				return true
			}
		}
		return false
	}, fake)

	_, err = fake.Command(ctx, slackfake.SlashCommand{Text: "device ws-017 beaconing", UserID: "U0ANALYST1", ChannelID: "C0CONTOSOSOC"})
	require.NoError(t, err)
	var card slackfake.Message
	testwait.For(t, 20*time.Second, "the desk card mentions the on-call expert, and they get a direct message", func() bool {
		for _, m := range fake.Messages("C0EXPERTDESK") {
			if strings.Contains(string(m.Blocks), "EOD-1") && slices.Equal(m.Notified, []string{"U0EXPERT1"}) {
				card = m
			}
		}
		for _, m := range fake.DirectMessages("U0EXPERT1") {
			if card.TS != "" && strings.Contains(string(m.Blocks), slackfake.PermalinkOf("C0EXPERTDESK", card.TS, "")) {
				return true
			}
		}
		return false
	}, fake)
	require.Empty(t, fake.Violations())
}
