package bot

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSameSlackChannelIDInTwoWorkspaces: a Slack channel id is one
// channel, wherever it is seen (Slack Connect shares one id between the
// workspaces of a shared channel), so two orgs cannot name it, whatever
// their teams: each would read the other's notifications and cases. (Two
// teams were taken as two places, and both orgs posted into the one
// channel.) A channel acts for its org only in its org's workspace; an
// event without the team acts for no org. The desk's channel is no org's.
func TestSameSlackChannelIDInTwoWorkspaces(t *testing.T) {
	t.Parallel()
	cfg := unitConfig()
	cfg.Orgs = append(cfg.Orgs, Org{ID: "northwind", Name: "Northwind", Slack: &SlackPlace{Team: "T0NORTHWIND", Channels: []string{"C0CONTOSOSOC"}}})
	cfg.Desk.Slack.Team = "T0PROVIDER"
	require.ErrorContains(t, cfg.Validate(), "C0CONTOSOSOC already belongs to org contoso: a channel acts for one org (a channel shared by Slack Connect")
	cfg.Orgs[2].Slack.Team = "T0CONTOSO"
	require.ErrorContains(t, cfg.Validate(), "C0CONTOSOSOC already belongs to org contoso")

	cfg.Orgs[2].Slack = &SlackPlace{Team: "T0NORTHWIND", Channels: []string{"C0NORTHSOC"}}
	require.NoError(t, cfg.Validate())
	b := &Bot{cfg: cfg}
	w := b.identify(User{Platform: Slack, Workspace: "T0CONTOSO", ID: "U0ANALYST"}, "C0CONTOSOSOC", nil)
	require.NotNil(t, w.org)
	require.Equal(t, "contoso", w.org.ID)
	for _, team := range []string{"", "T0OTHER", "T0NORTHWIND"} {
		w := b.identify(User{Platform: Slack, Workspace: team, ID: "U0ANALYST"}, "C0CONTOSOSOC", nil)
		require.Nil(t, w.org, "workspace %q", team)
	}
	// The desk channel counts only in the desk's workspace.
	require.True(t, b.identify(User{Platform: Slack, Workspace: "T0PROVIDER", ID: "U0EXPERT1"}, "C0EXPERTDESK", nil).desk)
	require.False(t, b.identify(User{Platform: Slack, Workspace: "T0CONTOSO", ID: "U0EXPERT1"}, "C0EXPERTDESK", nil).desk)
	// ...and it is no org's channel, in whichever workspace the org is.
	cfg.Orgs[2].Slack.Channels = []string{"C0EXPERTDESK"}
	require.ErrorContains(t, cfg.Validate(), "desk.slack.channel C0EXPERTDESK is also org northwind's channel")

	// With orgs in several workspaces, the desk must say which is its own.
	cfg = unitConfig()
	cfg.Orgs = append(cfg.Orgs, Org{ID: "northwind", Name: "Northwind", Slack: &SlackPlace{Team: "T0NORTHWIND", Channels: []string{"C0NORTHSOC"}}})
	require.ErrorContains(t, cfg.Validate(), "desk.slack.team is required when orgs are in several Slack workspaces (T0CONTOSO, T0NORTHWIND)")
}

// TestStaffRolesOnlyInTheDesksWorkspace: with customer workspaces
// installed, a user id in a customer's workspace that equals a configured
// expert's, manager's or admin's was given their role (every org's cases,
// reload, install links). Slack ids name a person within a workspace: the
// staff roles now hold only in the desk's.
func TestStaffRolesOnlyInTheDesksWorkspace(t *testing.T) {
	t.Parallel()
	cfg := unitConfig()
	cfg.Orgs = append(cfg.Orgs, Org{ID: "northwind", Name: "Northwind", Slack: &SlackPlace{Team: "T0NORTHWIND", Channels: []string{"C0NORTHSOC"}}})
	cfg.Desk.Slack.Team = "T0PROVIDER"
	require.NoError(t, cfg.Validate())
	b := &Bot{cfg: cfg}
	for _, id := range []string{"U0EXPERT1", "U0MANAGER1", "U0ADMIN1"} {
		require.NotEqual(t, []Role{RoleMember}, b.identify(User{Platform: Slack, Workspace: "T0PROVIDER", ID: id}, "C0EXPERTDESK", nil).roles, id)
		w := b.identify(User{Platform: Slack, Workspace: "T0NORTHWIND", ID: id}, "C0NORTHSOC", nil)
		require.Equal(t, []Role{RoleMember}, w.roles, "%s from a customer's workspace is a member there, nothing more", id)
		require.NotNil(t, w.org, "still a member of the org whose channel it is")
	}
	// Without a named desk workspace (one workspace), ids are as before.
	cfg = unitConfig()
	require.NoError(t, cfg.Validate())
	b = &Bot{cfg: cfg}
	require.Contains(t, b.identify(User{Platform: Slack, Workspace: "T0CONTOSO", ID: "U0EXPERT1"}, "C0CONTOSOSOC", nil).roles, RoleExpert)
}

// TestHelpAsThePlatformWritesIt: help names the commands as the caller's
// platform has them. On Discord experts' case verbs are in the case group,
// admins' in the admin group, and a search or taking the pager are
// options; it told Discord experts to type Slack's /experts take.
func TestHelpAsThePlatformWritesIt(t *testing.T) {
	t.Parallel()
	b := &Bot{cfg: unitConfig()}
	staff := []Role{RoleExpert, RoleAdmin}
	text := func(m Message) string {
		var sb strings.Builder
		for _, sec := range m.Sections {
			for _, l := range sec.Lines {
				sb.WriteString(plainLine(l) + "\n")
			}
		}
		return sb.String()
	}
	slack := text(b.help(who{user: User{Platform: Slack, ID: "U0EXPERT1"}, roles: staff, desk: true}))
	for _, want := range []string{"/experts take", "/experts conclude", "/experts reload", "oncall take", "cases search", "/experts campaign <name>"} {
		require.Contains(t, slack, want)
	}
	discord := text(b.help(who{user: User{Platform: Discord, ID: "111111111111111111"}, roles: staff, desk: true}))
	for _, want := range []string{"/experts case take", "/experts case conclude", "case more-time", "/experts admin reload",
		"/experts admin sample-notification", "oncall action:take", "cases search:", "/experts campaign show", "fill its options"} {
		require.Contains(t, discord, want)
	}
	for _, slackOnly := range []string{"/experts take", "/experts reload", "/experts campaign <name>"} {
		require.NotContains(t, discord, slackOnly)
	}
	// Experts are not offered what they may not do (credits: members and
	// managers).
	require.NotContains(t, slack, "credits")
}
