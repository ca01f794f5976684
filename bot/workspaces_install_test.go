package bot_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
)

// countingInstaller makes install links and counts them.
type countingInstaller struct{ n atomic.Int32 }

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
