package bot

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPermissionTable has one case per row of the permission table, for
// each kind of caller: a member of an org (in its channel), an expert and a
// manager (on the desk), an admin, and a stranger.
func TestPermissionTable(t *testing.T) {
	t.Parallel()
	b := &Bot{cfg: unitConfig()}
	callers := map[string]who{
		"member":   b.identify(User{Platform: Slack, Workspace: "T0CONTOSO", ID: "U0ANALYST"}, "C0CONTOSOSOC", nil),
		"expert":   b.identify(User{Platform: Slack, ID: "U0EXPERT1"}, "C0EXPERTDESK", nil),
		"manager":  b.identify(User{Platform: Slack, ID: "U0MANAGER1"}, "C0EXPERTDESK", nil),
		"admin":    b.identify(User{Platform: Slack, ID: "U0ADMIN1"}, "C0RANDOM", nil),
		"stranger": b.identify(User{Platform: Slack, ID: "U0NOBODY"}, "C0RANDOM", nil),
	}
	want := map[op][]string{
		opOpen:         {"member"},
		opStatus:       {"member", "expert", "manager"},
		opCases:        {"member", "expert", "manager"},
		opCasesAnyOrg:  {"expert", "manager"},
		opCredits:      {"member", "manager"},
		opHelp:         {"member", "expert", "manager", "admin"},
		opTake:         {"expert"},
		opAssign:       {"expert", "manager"},
		opExpertStatus: {"expert"},
		opNote:         {"expert"},
		opSampleNotify: {"admin"},
		opAddDetails:   {"member"},
		opClose:        {"member", "manager"},
		opReopen:       {"member", "manager"},
		opWithdraw:     {"member"},
		opAcknowledge:  {"member"},
		opShowScope:    {"member", "expert", "manager"},
		opRelayAsker:   {"member"},
		opRelayExpert:  {"expert"},
		opReport:       {"member", "expert", "manager"},
		opExport:       {"member", "expert", "manager"},
		opVerify:       {"member", "expert", "manager"},
		// Incidents worked from chat.
		opResolve:         {"member", "expert"},
		opNotifyNow:       {"member", "expert"},
		opIncidents:       {"member", "expert", "manager"},
		opIncidentsAnyOrg: {"expert", "manager"},
		opUpload:          {"member"},
		opDownload:        {"expert"},
		opChooseAsk:       {"member"},
		opApproveAsk:      {"manager"},
		opOncall:          {"expert", "manager"},
		opOncallTake:      {"expert"},
		opWeb:             {"member", "expert", "manager"},
		opCampaign:        {"expert"},
		opInstallLink:     {"admin"},
		opReload:          {"admin"},
		opWorkspaces:      {"admin"},
	}
	require.Len(t, want, len(permissions), "every row of the table has a test")
	for o, allowed := range want {
		t.Run(string(o), func(t *testing.T) {
			t.Parallel()
			for name, w := range callers {
				ok := false
				for _, a := range allowed {
					ok = ok || a == name
				}
				require.Equal(t, ok, w.may(o), "%s may %s", name, o)
			}
		})
	}
}

func TestIdentifyTenancy(t *testing.T) {
	t.Parallel()
	b := &Bot{cfg: unitConfig()}
	w := b.identify(User{Platform: Discord, Workspace: "1000000000000000001", ID: "1000000000000000077"}, "1000000000000000002", nil)
	require.Equal(t, "fabrikam", w.org.ID)
	s, _ := w.scope()
	require.Equal(t, Scope{Org: "fabrikam"}, s)
	// The same channel id under another guild is not Fabrikam's.
	w = b.identify(User{Platform: Discord, Workspace: "1000000000000000099", ID: "1000000000000000077"}, "1000000000000000002", nil)
	require.Nil(t, w.org)
	// A Discord thread of an org channel speaks for the org.
	th := &Ref{Platform: Discord, Channel: "1000000000000000002", Message: "1"}
	w = b.identify(User{Platform: Discord, Workspace: "1000000000000000001", ID: "1000000000000000077"}, "1000000000000000555", th)
	require.Equal(t, "fabrikam", w.org.ID)
}
