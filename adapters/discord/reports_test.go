package discord_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/adapters/discord"
	"github.com/threatdesk/threatdesk/adapters/discord/discordfake"
	"github.com/threatdesk/threatdesk/bot"
	"github.com/threatdesk/threatdesk/casework"
	"github.com/threatdesk/threatdesk/casework/caseworktest"
	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/secrets"
	"github.com/threatdesk/threatdesk/internal/testclock"
)

// The guild of the reports tests: Contoso's channel (channelID), Fabrikam's,
// the desk (deskID) and the managers' channel.
const (
	fabrikamChannel = "1000000000000000004"
	managersChannel = "1000000000000000005"
	frankID         = "1000000000000000012" // Fabrikam's analyst
	noteSecret      = "APT29 tooling, do not tell the customer yet"
)

// newReportsFlow is newFlow for the reports: two orgs on Discord, casework
// on the test clock (credits: each org's quarterly allowance, 0 for the
// default), and the weekly digest to the managers' channel.
func newReportsFlow(t *testing.T, start time.Time, credits int) (*flow, *casework.Service, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	db := pgtest.New(t)
	log := slog.New(slog.DiscardHandler)
	key, err := secrets.Generate()
	require.NoError(t, err)
	clock := testclock.New(start)
	cw, err := casework.New(db, casework.Config{Key: key, Now: clock.Now, CreditsPerQuarter: credits, CreditsCap: max(2*credits, 20),
		Orgs: []casework.Org{{ID: caseworktest.Contoso}, {ID: caseworktest.Fabrikam}}}, nil, nil)
	require.NoError(t, err)
	dfake := discordfake.New(t, discordfake.Options{Guilds: []discordfake.Guild{{ID: guildID, Channels: []string{channelID, fabrikamChannel, deskID, managersChannel}}}})
	dfake.AddUser(discordfake.User{ID: analystID, Username: "alice", GlobalName: "Alice"})
	dfake.AddUser(discordfake.User{ID: frankID, Username: "frank", GlobalName: "Frank"})
	dfake.AddUser(discordfake.User{ID: expertID, Username: "eve", GlobalName: "Eve Expert"})
	dfake.AddUser(discordfake.User{ID: managerID, Username: "max", GlobalName: "Max"})
	b, err := bot.New(reportsConfig(), db, bot.NewCaseworkCases(cw), nil, log, prometheus.NewRegistry())
	require.NoError(t, err)
	da, err := discord.New(discord.Config{Token: secrets.String(dfake.Token()), AppID: dfake.AppID(), APIURL: dfake.APIURL(), Guilds: []string{guildID}},
		log, prometheus.NewRegistry(), b)
	require.NoError(t, err)
	require.NoError(t, b.Register(da))
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() { require.NoError(t, b.Stop()) })
	require.NoError(t, da.Start(ctx))
	t.Cleanup(func() { require.NoError(t, da.Stop()) })
	require.True(t, dfake.WaitSessions(1, 10*time.Second))
	f := &flow{t: t, dfake: dfake, bot: b}
	f.wait("/experts registered", func() bool { return len(dfake.Commands(guildID)) == 1 })
	if credits == 0 {
		caseworktest.Run(t, cw, clock, db, caseworktest.People{Platform: "discord",
			Workspace: map[string]string{caseworktest.Contoso: guildID, caseworktest.Fabrikam: guildID, "": guildID},
			Requester: map[string]string{caseworktest.Contoso: analystID, caseworktest.Fabrikam: frankID}, Expert: expertID})
	}
	return f, cw, db
}

// reportsConfig is the bot's config of the reports tests.
func reportsConfig() bot.Config {
	return bot.Config{
		Orgs: []bot.Org{
			{ID: caseworktest.Contoso, Name: "Contoso", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{channelID}}},
			{ID: caseworktest.Fabrikam, Name: "Fabrikam", Discord: &bot.DiscordPlace{Guild: guildID, Channels: []string{fabrikamChannel}}},
		},
		Desk:     bot.Desk{Discord: &bot.DiscordDesk{Guild: guildID, Channel: deskID}},
		Experts:  bot.UserIDs{Discord: []string{expertID}},
		Managers: bot.UserIDs{Discord: []string{managerID}},
		Reports:  bot.Reports{Digest: &bot.Digest{Discord: &bot.DigestDiscord{Guild: guildID, Channel: managersChannel}}},
		Delivery: bot.Delivery{Workers: 2, Poll: 50 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: time.Second,
			Pace: map[bot.Platform]bot.Pace{bot.Discord: {}}},
	}
}

// ask runs /experts sub as user in channel and returns the answer, once
// the deferred answer is filled.
func (f *flow) ask(user, channel, sub string, opts map[string]any) discordfake.Message {
	f.t.Helper()
	in, cb := f.command(user, channel, sub, opts)
	require.Equal(f.t, 5, cb.Type, "deferred: %s", cb.Data)
	require.Contains(f.t, string(cb.Data), `"flags":64`, "privately")
	var got discordfake.Message
	f.wait("the answer to /experts "+sub, func() bool {
		m, ok := f.dfake.OriginalResponse(in)
		got = m
		return ok && m.Flags&(1<<7) == 0
	})
	return got
}

// pressed presses the button custom on m as user in channel and returns
// the answer, an ephemeral follow-up.
func (f *flow) pressed(m discordfake.Message, user, channel, custom string) discordfake.Message {
	f.t.Helper()
	m.ChannelID = channel
	in, err := f.dfake.Interact(f.dfake.ComponentPayload(m, user, custom))
	require.NoError(f.t, err)
	cb, err := in.Wait(5 * time.Second)
	require.NoError(f.t, err)
	require.Equal(f.t, 6, cb.Type, "a silent deferred update: %s", cb.Data)
	var got discordfake.Message
	f.wait("the answer to "+custom, func() bool {
		fs := f.dfake.FollowupMessages(in)
		if len(fs) == 0 {
			return false
		}
		got = fs[0]
		return true
	})
	require.Equal(f.t, 64, got.Flags&64, "ephemeral")
	return got
}

// TestReportsOverDiscord runs report, cases search, export and verify with
// the real bot over the gateway, on caseworktest's scenario: embeds show
// the figures worked out by hand; members never see another org's.
func TestReportsOverDiscord(t *testing.T) {
	t.Parallel()
	f, cw, _ := newReportsFlow(t, caseworktest.T, 0)
	sc := sceneRefs(t, cw)
	_, err := cw.AddMessage(context.Background(), casework.MessageRequest{Ref: sc["C1"], Internal: true, Text: noteSecret,
		Actor: casework.Actor{Role: casework.RoleExpert, Person: casework.Person{Platform: "discord", Workspace: guildID, UserID: expertID}}})
	require.NoError(t, err)

	m := f.ask(managerID, deskID, "report", map[string]any{"org": "contoso"})
	require.Len(t, m.Embeds, 1)
	e := m.Embeds[0]
	require.Equal(t, "Service report · Contoso · Q1 2026 so far", e.Title)
	fields := map[string]string{}
	for _, x := range e.Fields {
		fields[x.Name] = x.Value
	}
	require.Equal(t, "median 1 hour 15 minutes · 90th percentile 2 hours 42 minutes (4 cases)", fields["First response"])
	require.Equal(t, "median 5 hours · 90th percentile 5 hours 48 minutes (3 cases)", fields["Conclusion"])
	require.Equal(t, "67% (2 of 3 decided) · 1 open on time · 2 withdrawn", fields["Within SLA"])
	require.Equal(t, "4 used · 6 left", fields["Credits"])
	require.Equal(t, "3 posted · 2 acknowledged · median 20 minutes to acknowledge", fields["Notifications"])
	require.Contains(t, fields["SLA breaches (1)"], "`"+sc["C3"]+"` first response (high priority): 3 hours against a target of 1 hour")

	m = f.ask(frankID, fabrikamChannel, "report", map[string]any{"period": "quarter"})
	require.Equal(t, "Service report · Fabrikam · Q1 2026 so far", m.Embeds[0].Title)
	require.Contains(t, text(m), "median 2 days 2 hours · 90th percentile 2 days 2 hours (1 case)", "its 20h pause left out")
	require.NotContains(t, text(m), "Contoso")
	m = f.ask(managerID, deskID, "report", nil)
	require.Contains(t, text(m), "median 5 hours 30 minutes · 90th percentile 1 day 13 hours (4 cases)")
	require.Contains(t, text(m), "**Contoso**: 6 cases opened")

	foreign := text(f.ask(analystID, channelID, "report", map[string]any{"org": "fabrikam"}))
	unknown := text(f.ask(analystID, channelID, "report", map[string]any{"org": "initech"}))
	require.Equal(t, strings.ReplaceAll(unknown, "initech", "X"), strings.ReplaceAll(foreign, "fabrikam", "X"))

	// Search, by a mention as Discord's client sends it in a string option.
	m = f.ask(analystID, channelID, "cases", map[string]any{"search": "<@" + analystID + ">"})
	require.Contains(t, text(m), sc["C1"])
	require.NotContains(t, text(m), sc["F1"])

	// Export: the files in an ephemeral answer to the caller alone.
	ref := sc["C1"]
	m = f.ask(analystID, channelID, "export", map[string]any{"case": ref})
	require.Equal(t, 64, m.Flags&64, "ephemeral: only the caller sees it")
	require.Len(t, m.Attachments, 2)
	require.Equal(t, ref+".md", m.Attachments[0].Filename)
	require.Equal(t, ref+" case record (Markdown)", m.Attachments[0].Description)
	require.Contains(t, string(m.Attachments[0].Data), "# "+ref+" — case record")
	require.Contains(t, string(m.Attachments[0].Data), "Is this lateral movement on ws-017?")
	require.NotContains(t, string(m.Attachments[0].Data), noteSecret)
	require.Equal(t, ref+".json", m.Attachments[1].Filename)
	require.Contains(t, string(m.Attachments[1].Data), `"ref": "`+ref+`"`)
	require.Contains(t, text(m), "not included")
	for _, x := range f.dfake.AllMessages() {
		if len(x.Attachments) > 0 {
			require.Equal(t, 64, x.Flags&64, "no record outside an ephemeral answer: %s", x.ID)
		}
	}
	m = f.ask(expertID, deskID, "export", map[string]any{"case": ref})
	require.Contains(t, string(m.Attachments[0].Data), noteSecret, "experts get the internal notes")
	foreign, unknown = text(f.ask(frankID, fabrikamChannel, "export", map[string]any{"case": ref})), text(f.ask(frankID, fabrikamChannel, "export", map[string]any{"case": "EOD-999"}))
	require.Equal(t, unknown, foreign)
	require.Contains(t, foreign, "Not found")

	// Verify.
	m = f.ask(analystID, channelID, "verify", map[string]any{"case": ref})
	require.Regexp(t, `Timeline intact.*`+ref+`: intact, \d+ entries, head [0-9a-f]{16}…`, text(m))
	foreign, unknown = text(f.ask(frankID, fabrikamChannel, "verify", map[string]any{"case": ref})), text(f.ask(frankID, fabrikamChannel, "verify", map[string]any{"case": "EOD-999"}))
	require.Equal(t, unknown, foreign)

	require.Empty(t, f.dfake.Pings())
	require.Empty(t, f.dfake.Violations())
}

// sceneRefs are the scenario's references, read back from casework (the
// flow ran the scenario).
func sceneRefs(t *testing.T, cw *casework.Service) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, q := range []struct{ name, question string }{
		{"C1", "Is this lateral movement on ws-017?"}, {"C3", "What is this incident?"}, {"F1", "Fabrikam alert"},
	} {
		p, err := cw.Search(context.Background(), casework.AllOrgs(), casework.SearchQuery{Text: `"` + q.question + `"`})
		require.NoError(t, err)
		require.NotEmpty(t, p.Cases, q.question)
		out[q.name] = p.Cases[0].Ref
	}
	return out
}

// TestMoreOverDiscord: "cases" pages through 25 cases with the More button
// (custom_id "more:" and an opaque token); a member of another org pressing
// it reads what a made-up token gets.
func TestMoreOverDiscord(t *testing.T) {
	t.Parallel()
	f, cw, _ := newReportsFlow(t, caseworktest.Now, 40)
	for i := range 25 {
		_, _, err := cw.Open(context.Background(), casework.OpenRequest{Key: fmt.Sprintf("m%d", i), Org: caseworktest.Contoso,
			Subject: casework.Subject{Kind: casework.SubjectNone}, Question: fmt.Sprintf("beacon number %d", i),
			Requester: casework.Person{Platform: "discord", Workspace: guildID, UserID: analystID}})
		require.NoError(t, err)
	}
	seen := map[string]bool{}
	m := f.ask(analystID, channelID, "cases", map[string]any{"filter": "all"})
	for page := 1; ; page++ {
		for i := 1; i <= 25; i++ {
			if strings.Contains(text(m), fmt.Sprintf("`EOD-%d`", i)) {
				require.False(t, seen[fmt.Sprintf("EOD-%d", i)], "EOD-%d on two pages", i)
				seen[fmt.Sprintf("EOD-%d", i)] = true
			}
		}
		more := customIDWithPrefix(m, string(bot.ActMore)+":")
		if more == "" {
			require.Equal(t, 3, page, "pages of 10, 10 and 5")
			break
		}
		require.Len(t, strings.TrimPrefix(more, "more:"), 22, "an opaque token")
		if page == 1 {
			require.Contains(t, text(m), "Cases 1–10 of 25")
			foreign := f.pressed(m, frankID, fabrikamChannel, more)
			made := f.pressed(m, frankID, fabrikamChannel, "more:AAAAAAAAAAAAAAAAAAAAAA")
			require.Equal(t, text(made), text(foreign))
			require.Contains(t, text(foreign), "can no longer be continued")
		}
		m = f.pressed(m, analystID, channelID, more)
	}
	require.Len(t, seen, 25)
	require.Empty(t, f.dfake.Violations())
}

// TestDigestOverDiscord: the weekly digest posts each org's report of last
// week to the managers' Discord channel, once, as embeds.
func TestDigestOverDiscord(t *testing.T) {
	t.Parallel()
	f, cw, pool := newReportsFlow(t, caseworktest.T, 0)
	d, err := bot.NewDigestScheduler(reportsConfig().Reports, bot.NewCaseworkCases(cw), pool, nil, nil)
	require.NoError(t, err)
	queued, err := d.RunOnce(context.Background())
	require.NoError(t, err)
	require.True(t, queued)
	f.wait("two digests", func() bool { return len(f.dfake.Messages(managersChannel)) >= 2 })
	again, err := d.RunOnce(context.Background())
	require.NoError(t, err)
	require.False(t, again)
	msgs := f.dfake.Messages(managersChannel)
	require.Len(t, msgs, 2)
	byTitle := map[string]string{}
	for _, m := range msgs {
		byTitle[m.Embeds[0].Title] = text(m)
	}
	contoso := byTitle["Weekly digest · Contoso · week of 2 February 2026"]
	require.Contains(t, contoso, "median 2 hours · 90th percentile 2 hours 48 minutes (3 cases)")
	require.Contains(t, contoso, "67% (2 of 3 decided) · 1 withdrawn")
	require.Contains(t, byTitle["Weekly digest · Fabrikam · week of 2 February 2026"], "median 2 days 2 hours")
	require.Empty(t, f.dfake.Violations())
}
