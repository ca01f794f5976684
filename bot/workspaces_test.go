package bot

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSameSlackChannelIDInTwoWorkspaces: a channel id is checked with its
// team. Two orgs may name the same channel id in two workspaces (Slack
// Connect shares one id); each workspace's events act for its own org
// only, never for the other's, and an event without the team acts for
// neither.
func TestSameSlackChannelIDInTwoWorkspaces(t *testing.T) {
	t.Parallel()
	cfg := unitConfig()
	cfg.Orgs = append(cfg.Orgs, Org{ID: "northwind", Name: "Northwind", Slack: &SlackPlace{Team: "T0NORTHWIND", Channels: []string{"C0CONTOSOSOC"}}})
	cfg.Desk.Slack.Team = "T0PROVIDER"
	require.NoError(t, cfg.Validate())
	b := &Bot{cfg: cfg}
	for team, org := range map[string]string{"T0CONTOSO": "contoso", "T0NORTHWIND": "northwind"} {
		w := b.identify(User{Platform: Slack, Workspace: team, ID: "U0ANALYST"}, "C0CONTOSOSOC", nil)
		require.NotNil(t, w.org, team)
		require.Equal(t, org, w.org.ID)
	}
	for _, team := range []string{"", "T0OTHER"} {
		w := b.identify(User{Platform: Slack, Workspace: team, ID: "U0ANALYST"}, "C0CONTOSOSOC", nil)
		require.Nil(t, w.org, "workspace %q", team)
	}
	// The desk channel counts only in the desk's workspace.
	require.True(t, b.identify(User{Platform: Slack, Workspace: "T0PROVIDER", ID: "U0EXPERT1"}, "C0EXPERTDESK", nil).desk)
	require.False(t, b.identify(User{Platform: Slack, Workspace: "T0CONTOSO", ID: "U0EXPERT1"}, "C0EXPERTDESK", nil).desk)

	// The same channel twice in one workspace is still refused.
	cfg.Orgs[2].Slack.Team = "T0CONTOSO"
	require.ErrorContains(t, cfg.Validate(), "C0CONTOSOSOC already belongs to org contoso")
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
