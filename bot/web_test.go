package bot_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	. "github.com/threatdesk/threatdesk/bot" //nolint:revive // the tests read like the package's own
)

// fakeSignIn is a case tracker that records whom it made links for, or
// fails.
type fakeSignIn struct {
	mu   sync.Mutex
	got  []WebUser
	fail error
}

func (s *fakeSignIn) SignInLink(_ context.Context, u WebUser) (WebLink, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return WebLink{}, s.fail
	}
	s.got = append(s.got, u)
	return WebLink{URL: "https://threatdesk.example.com/web/login/secret-token", ExpiresAt: time.Date(2026, 3, 18, 9, 40, 0, 0, time.UTC),
		Note: "This link only works on the machine threatdesk runs on."}, nil
}

func (s *fakeSignIn) users() []WebUser {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]WebUser(nil), s.got...)
}

func firstLink(m Message) string {
	for _, l := range m.Text {
		for _, sp := range l {
			if sp.Link != "" {
				return sp.Link
			}
		}
	}
	return ""
}

// TestWebCommand: "/experts web" answers privately, in the acknowledgement,
// with the tracker's link made for the caller's roles where they typed it
// (members by their org's channel, experts and managers by id); strangers
// and admins alone are refused; without a tracker it says so; the command
// is never stored (the answer carries a secret).
func TestWebCommand(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ack, m := f.run(t, Slack, analyst, contosoSOC, "web")
	require.Contains(t, plain(m), "not enabled")
	require.True(t, ack.Private)

	s := &fakeSignIn{}
	f.bot.SetWebSignIn(s)
	tests := []struct {
		name, user, channel string
		p                   Platform
		roles               []Role
		org, want           string
	}{
		{name: "member", p: Slack, user: analyst, channel: contosoSOC, roles: []Role{RoleMember}, org: "contoso", want: "Contoso's cases"},
		{name: "member on discord", p: Discord, user: fabAnalyst, channel: fabSOC, roles: []Role{RoleMember}, org: "fabrikam", want: "Fabrikam's cases"},
		{name: "expert on the desk", p: Slack, user: expert1, channel: deskChannel, roles: []Role{RoleExpert}, want: "every org's cases"},
		{name: "expert in an org channel", p: Slack, user: expert1, channel: contosoSOC, roles: []Role{RoleExpert, RoleMember}, org: "contoso", want: "every org's cases"},
		{name: "manager", p: Slack, user: manager, channel: deskChannel, roles: []Role{RoleManager}, want: "every org's cases"},
		{name: "stranger", p: Slack, user: "U0NOBODY", channel: strangerChan, want: "not connected to an organisation"},
		{name: "admin alone", p: Slack, user: admin, channel: strangerChan, want: "Only members of an organisation's SOC (in its SOC channel), threat experts and managers of the expert service can sign in to the case tracker"},
	}
	for _, tc := range tests {
		before := len(s.users())
		ack, m := f.run(t, tc.p, tc.user, tc.channel, "web")
		require.True(t, ack.Private, tc.name)
		require.Contains(t, plain(m), tc.want, tc.name)
		if tc.roles == nil {
			require.Len(t, s.users(), before, "%s: no link", tc.name)
			require.Empty(t, firstLink(m), tc.name)
			continue
		}
		require.Equal(t, "https://threatdesk.example.com/web/login/secret-token", firstLink(m), tc.name)
		require.Contains(t, plain(m), "press Sign in there. It signs in once, until 09:40 UTC (10 minutes)", tc.name)
		require.Contains(t, plain(m), "only works on the machine", tc.name)
		u := s.users()[before]
		require.Equal(t, tc.roles, u.Roles, tc.name)
		require.Equal(t, tc.org, u.Org, tc.name)
		require.Equal(t, tc.channel, u.Channel, tc.name)
		require.Equal(t, tc.user, u.User.ID, tc.name)
	}
	require.Equal(t, "Ana Lyst", s.users()[0].User.DisplayName, "the name comes from the platform")
	var n int
	require.NoError(t, f.db.QueryRow(context.Background(), `SELECT count(*) FROM bot_inbound`).Scan(&n))
	require.Zero(t, n, "nothing of /experts web is stored")

	s.fail = errors.New("database down")
	_, m = f.run(t, Slack, analyst, contosoSOC, "web")
	require.Contains(t, plain(m), "cannot reach its database")

	_, m = f.run(t, Slack, analyst, contosoSOC, "help")
	require.Contains(t, plain(m), "/experts web")
}

// TestWebAccess: the tracker's view of a person is chat's: the same roles
// (and org, for a member's channel) as a command of theirs would get.
func TestWebAccess(t *testing.T) {
	t.Parallel()
	f := setup(t)
	u := func(p Platform, id string) User { return f.user(p, id) }
	w := f.bot.WebAccess(u(Slack, analyst), contosoSOC)
	require.Equal(t, []Role{RoleMember}, w.Roles)
	require.Equal(t, "contoso", w.Org)
	require.Equal(t, "Contoso", w.OrgName)
	require.True(t, w.Has(RoleMember))
	w = f.bot.WebAccess(u(Slack, analyst), "C0GONE")
	require.Empty(t, w.Roles, "a channel that is no org's gives nothing")
	w = f.bot.WebAccess(u(Slack, expert1), deskChannel)
	require.Equal(t, []Role{RoleExpert}, w.Roles)
	require.Empty(t, w.Org)
	w = f.bot.WebAccess(User{Platform: Slack, Workspace: "T0OTHER", ID: analyst}, contosoSOC)
	require.Empty(t, w.Roles, "the org's channel in another workspace is not the org's")
	require.Equal(t, []WebOrg{{ID: "contoso", Name: "Contoso"}, {ID: "fabrikam", Name: "Fabrikam"}}, f.bot.WebOrgs())
}
