package bot_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
)

// countingInstaller makes install links and counts them.
type countingInstaller struct{ n atomic.Int32 }

func (c *countingInstaller) Installed(context.Context) ([]Installed, error) { return nil, nil }

func (c *countingInstaller) InstallLink(_ context.Context, org string, _ User) (InstallLink, error) {
	c.n.Add(1)
	return InstallLink{URL: "https://threatdesk.example.com/slack/install?state=" + org, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

// TestInstallLinkNeedsTheOrgsWorkspace: an install link for an org with no
// Slack workspace in the config was accepted in any workspace, which was
// then linked to that org for good (the org that owns the workspace was
// refused afterwards). Such a link is no longer made.
func TestInstallLinkNeedsTheOrgsWorkspace(t *testing.T) {
	t.Parallel()
	f := setup(t)
	var in countingInstaller
	f.bot.UseInstaller(&in)
	_, m := f.run(t, Slack, admin, deskChannel, "install-link fabrikam")
	require.Contains(t, plain(m), "Fabrikam has no Slack workspace in the config: set orgs[].slack.team")
	require.Zero(t, in.n.Load(), "no link made")
	_, m = f.run(t, Slack, admin, deskChannel, "install-link contoso")
	require.Contains(t, plain(m), "Add threatdesk to Contoso's Slack")
	require.EqualValues(t, 1, in.n.Load())
}

// listingInstaller lists the given workspaces.
type listingInstaller struct {
	countingInstaller
	list []Installed
}

func (l *listingInstaller) Installed(context.Context) ([]Installed, error) { return l.list, nil }

// TestWorkspacesCommand: an admin's "/experts workspaces" lists the
// workspaces that added threatdesk (the name as untrusted text), those that
// removed it with how to restore them, and the orgs whose workspace has not
// added it yet with the command to do it; the desk's own workspace is not
// one to install. Others are refused, and without Add to Slack it says how
// to set it up.
func TestWorkspacesCommand(t *testing.T) {
	t.Parallel()
	northwind := func(c *Config) {
		c.Orgs = append(c.Orgs,
			Org{ID: "northwind", Name: "Northwind", Slack: &SlackPlace{Team: "T0NORTHWIND", Channels: []string{"C0NWSOC"}}},
			Org{ID: "tailspin", Name: "Tailspin", Slack: &SlackPlace{Team: "T0TAILSPIN", Channels: []string{"C0TSSOC"}}})
	}
	f := setup(t, northwind)
	_, m := f.run(t, Slack, admin, deskChannel, "workspaces")
	require.Contains(t, plain(m), "Add to Slack is not set up")

	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	f.bot.UseInstaller(&listingInstaller{list: []Installed{
		{Workspace: "T0TAILSPIN", WorkspaceName: "Tailspin <!channel>", Org: "tailspin", InstalledBy: "U0TSADMIN", InstalledAt: at, Active: true},
		{Workspace: "T0OLD", WorkspaceName: "Old Fabrikam", Org: "fabrikam", InstalledAt: at, InactiveAt: at.Add(24 * time.Hour), InactiveWhy: "app_uninstalled"},
	}})
	_, m = f.run(t, Slack, admin, deskChannel, "workspaces")
	got := plain(m)
	require.Equal(t, "Slack workspaces", m.Title)
	require.Contains(t, got, "The provider's own workspace "+slackTeam+" uses SLACK_BOT_TOKEN")
	require.Contains(t, got, "Tailspin <!channel> (T0TAILSPIN) · Tailspin (tailspin) · since")
	require.Contains(t, got, "approved by Slack user U0TSADMIN")
	require.Contains(t, got, "Old Fabrikam (T0OLD) · Fabrikam (fabrikam) · the app was removed")
	require.Contains(t, got, "/experts install-link fabrikam makes a link to install it again")
	require.Contains(t, got, "Northwind (northwind, workspace T0NORTHWIND): /experts install-link northwind")
	require.NotContains(t, got, "Contoso (contoso, workspace", "Contoso is in the desk's workspace")
	for _, sec := range m.Sections {
		for _, l := range sec.Lines {
			for _, s := range l {
				if strings.Contains(s.Text, "<!channel>") {
					require.True(t, s.Untrusted, "a workspace's name is its admins' text")
				}
			}
		}
	}

	_, m = f.run(t, Slack, expert1, deskChannel, "workspaces")
	require.NotEqual(t, "Slack workspaces", m.Title)
	require.Contains(t, plain(m), "Only threatdesk admins can list the Slack workspaces that added threatdesk")
}

// TestWorkspacesWithoutADeskTeam: with the desk on Discord (no
// desk.slack.team), the orgs in the Slack token's own workspace are not
// listed as still to install: the adapter names that workspace.
func TestWorkspacesWithoutADeskTeam(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *Config) {
		c.Desk = Desk{Discord: &DiscordDesk{Guild: fabGuild, Channel: "1300000000000000077"}}
		c.Experts.Discord = append(c.Experts.Discord, "1300000000000000066")
		c.Admins = UserIDs{Discord: []string{"1300000000000000066"}}
	})
	f.bot.UseInstaller(&listingInstaller{list: []Installed{{Workspace: slackTeam, Own: true}}})
	_, m := f.run(t, Discord, "1300000000000000066", "1300000000000000077", "workspaces")
	got := plain(m)
	require.Contains(t, got, "The provider's own workspace "+slackTeam+" uses SLACK_BOT_TOKEN")
	require.NotContains(t, got, "install-link contoso", "Contoso is in the token's own workspace")
	require.NotContains(t, got, "Installed", "the own workspace is not an install")
}
