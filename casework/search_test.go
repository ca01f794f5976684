package casework_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

func TestParseSearch(t *testing.T) {
	t.Parallel()
	sha256 := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in       string
		kind     casework.SearchKind
		term     string
		wantFail bool
	}{
		{in: "EOD-12", kind: casework.SearchRef, term: "12"},
		{in: " eod-7 ", kind: casework.SearchRef, term: "7"},
		{in: "#42", kind: casework.SearchRef, term: "42"},
		{in: "@U0ALICE", kind: casework.SearchUser, term: "U0ALICE"},
		{in: "<@U0ALICE>", kind: casework.SearchUser, term: "U0ALICE"},
		{in: "<@U0ALICE|alice>", kind: casework.SearchUser, term: "U0ALICE"},
		{in: "<@!1000000000000000009>", kind: casework.SearchUser, term: "1000000000000000009"},
		{in: "<@1000000000000000009>", kind: casework.SearchUser, term: "1000000000000000009"},
		{in: strings.ToUpper(sha256), kind: casework.SearchHash, term: sha256},
		{in: strings.Repeat("0f", 20), kind: casework.SearchHash, term: strings.Repeat("0f", 20)},
		{in: strings.Repeat("9c", 16), kind: casework.SearchHash, term: strings.Repeat("9c", 16)},
		{in: "laptop-042.contoso.local", kind: casework.SearchSubject, term: "laptop-042.contoso.local"},
		{in: "da637551227677560813_-961444813", kind: casework.SearchSubject, term: "da637551227677560813_-961444813"},
		{in: "12", kind: casework.SearchSubject, term: "12"},
		{in: strings.Repeat("ab", 31), kind: casework.SearchSubject, term: strings.Repeat("ab", 31)},
		{in: "lateral movement", kind: casework.SearchText, term: "lateral movement"},
		{in: `"pass the hash"`, kind: casework.SearchText, term: `"pass the hash"`},
		{in: "EOD-12 ransomware", kind: casework.SearchText, term: "EOD-12 ransomware"},
		{in: "   ", wantFail: true},
		{in: strings.Repeat("x ", casework.MaxSearchRunes), wantFail: true},
	} {
		kind, term, err := casework.ParseSearch(tc.in)
		if tc.wantFail {
			require.ErrorIs(t, err, casework.ErrInvalid, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.kind, kind, tc.in)
		require.Equal(t, tc.term, term, tc.in)
	}
}

// searchFixture: cases of two orgs with questions, messages (one an
// internal note), subjects and people to find.
type searchFixture struct {
	*fixture
	refs map[string]string
}

func newSearchFixture(t *testing.T) *searchFixture {
	t.Helper()
	f := setup(t, func(c *casework.Config) { c.CreditsPerQuarter, c.CreditsCap = 50, 50 })
	sf := &searchFixture{fixture: f, refs: map[string]string{}}
	ctx := context.Background()
	hash := strings.Repeat("e3b0c442", 8)
	open := func(name, org, user string, sub casework.Subject, question string) string {
		req := f.openReq(org)
		req.Subject, req.Question = sub, question
		req.Requester = requester(org, user).Person
		c, _, err := f.svc.Open(ctx, req)
		require.NoError(t, err)
		sf.refs[name] = c.Ref
		return c.Ref
	}
	open("move", "contoso", "U-alice", casework.Subject{Kind: casework.SubjectAlert, ID: "da637-1", Name: "Lateral movement"},
		"Is this lateral movement from the finance laptop?")
	open("file", "contoso", "U-bob", casework.Subject{Kind: casework.SubjectFile, ID: hash}, "Is this file malicious?")
	open("host", "contoso", "U-bob", casework.Subject{Kind: casework.SubjectDevice, ID: "4b1f0c", Name: "LAPTOP-042"},
		"Strange logons on this device")
	open("fab", "fabrikam", "U-alice", casework.Subject{Kind: casework.SubjectAlert, ID: "da637-2"},
		"Lateral movement between our servers")
	open("note", "contoso", "U-carol", casework.Subject{Kind: casework.SubjectNone}, "Please look at this alert")

	// The expert answers "move" and writes an internal note on "note".
	_, err := f.svc.Take(ctx, sf.refs["move"], expert("U-expert"))
	require.NoError(t, err)
	_, err = f.svc.AddMessage(ctx, casework.MessageRequest{Ref: sf.refs["move"], Actor: expert("U-expert"),
		Text: "We saw Mimikatz credential dumping on the host."})
	require.NoError(t, err)
	_, err = f.svc.AddMessage(ctx, casework.MessageRequest{Ref: sf.refs["note"], Actor: expert("U-expert"), Internal: true,
		Text: "Looks like the Conti ransomware playbook; do not tell them yet."})
	require.NoError(t, err)
	_, err = f.svc.AddMessage(ctx, casework.MessageRequest{Ref: sf.refs["file"], Actor: requester("contoso", "U-bob"),
		Text: "It was downloaded from " + hash + " mirror"})
	require.NoError(t, err)
	return sf
}

func (sf *searchFixture) search(t *testing.T, v casework.Viewer, q casework.SearchQuery) *casework.SearchPage {
	t.Helper()
	p, err := sf.svc.Search(context.Background(), v, q)
	require.NoError(t, err)
	return p
}

func (sf *searchFixture) names(p *casework.SearchPage) []string {
	by := map[string]string{}
	for n, r := range sf.refs {
		by[r] = n
	}
	out := []string{}
	for _, c := range p.Cases {
		out = append(out, by[c.Ref])
	}
	return out
}

func TestSearch(t *testing.T) {
	t.Parallel()
	sf := newSearchFixture(t)
	all, contoso, fabrikam := casework.AllOrgs(), casework.OrgViewer("contoso"), casework.OrgViewer("fabrikam")
	hash := strings.Repeat("e3b0c442", 8)
	for _, tc := range []struct {
		name string
		v    casework.Viewer
		q    casework.SearchQuery
		kind casework.SearchKind
		want []string
	}{
		{"words, every org, newest first", all, casework.SearchQuery{Text: "lateral movement"}, casework.SearchText, []string{"fab", "move"}},
		{"words, stemmed", all, casework.SearchQuery{Text: "lateral movements"}, casework.SearchText, []string{"fab", "move"}},
		{"words, one org", contoso, casework.SearchQuery{Text: "lateral movement"}, casework.SearchText, []string{"move"}},
		{"words, narrowed by a manager", all, casework.SearchQuery{Text: "lateral movement", Org: "fabrikam"}, casework.SearchText, []string{"fab"}},
		{"words in a message", contoso, casework.SearchQuery{Text: "mimikatz dumping"}, casework.SearchText, []string{"move"}},
		{"websearch syntax, stemmed", all, casework.SearchQuery{Text: `lateral -server`}, casework.SearchText, []string{"move"}},
		{"an internal note does not make a case findable by a member", contoso, casework.SearchQuery{Text: "conti ransomware"}, casework.SearchText, []string{}},
		{"nor by an expert who did not ask for notes", all, casework.SearchQuery{Text: "conti ransomware"}, casework.SearchText, []string{}},
		{"experts find notes when they ask", all, casework.SearchQuery{Text: "conti ransomware", Internal: true}, casework.SearchText, []string{"note"}},
		{"hash: subject and messages", all, casework.SearchQuery{Text: strings.ToUpper(hash)}, casework.SearchHash, []string{"file"}},
		{"host name, any case", contoso, casework.SearchQuery{Text: "laptop-042"}, casework.SearchSubject, []string{"host"}},
		{"alert id", all, casework.SearchQuery{Text: "DA637-2"}, casework.SearchSubject, []string{"fab"}},
		{"alert id of another org", contoso, casework.SearchQuery{Text: "da637-2"}, casework.SearchSubject, []string{}},
		{"one word also searches text", contoso, casework.SearchQuery{Text: "logons"}, casework.SearchSubject, []string{"host"}},
		{"requester", all, casework.SearchQuery{Text: "<@U-alice>"}, casework.SearchUser, []string{"fab", "move"}},
		{"requester, one org", fabrikam, casework.SearchQuery{Text: "@U-alice"}, casework.SearchUser, []string{"fab"}},
		{"assignee", all, casework.SearchQuery{Text: "@U-expert"}, casework.SearchUser, []string{"move"}},
		{"reference", contoso, casework.SearchQuery{Text: sf.refs["host"]}, casework.SearchRef, []string{"host"}},
		{"reference of another org", fabrikam, casework.SearchQuery{Text: sf.refs["host"]}, casework.SearchRef, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := sf.search(t, tc.v, tc.q)
			require.Equal(t, tc.kind, p.Kind)
			require.Equal(t, tc.want, sf.names(p))
			require.False(t, p.More)
			require.Empty(t, p.Next)
		})
	}

	ctx := context.Background()
	_, err := sf.svc.Search(ctx, contoso, casework.SearchQuery{Text: "ransomware", Internal: true})
	require.ErrorIs(t, err, casework.ErrInvalid, "a member cannot ask for internal notes")
	_, err = sf.svc.Search(ctx, all, casework.SearchQuery{Text: "is this the"})
	require.ErrorIs(t, err, casework.ErrInvalid, "only stop words")
	_, err = sf.svc.Search(ctx, all, casework.SearchQuery{Text: "lateral", Cursor: "not a cursor!"})
	require.ErrorIs(t, err, casework.ErrInvalid)
	_, err = sf.svc.Search(ctx, all, casework.SearchQuery{Text: "lateral", Limit: casework.MaxSearchPage + 1})
	require.ErrorIs(t, err, casework.ErrInvalid)
}

// TestSearchPages: a search pages with a cursor, newest first, and a case
// opened between pages neither repeats nor hides one.
func TestSearchPages(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *casework.Config) { c.CreditsPerQuarter, c.CreditsCap = 50, 50 })
	ctx := context.Background()
	var want []string
	for i := range 23 {
		req := f.openReq("contoso")
		req.Question = fmt.Sprintf("phishing mail number %d", i)
		c, _, err := f.svc.Open(ctx, req)
		require.NoError(t, err)
		want = append([]string{c.Ref}, want...)
		f.open(t, "contoso") // a case that does not match
	}
	var got []string
	q := casework.SearchQuery{Text: "phishing", Limit: 10}
	for page := 0; ; page++ {
		p, err := f.svc.Search(ctx, casework.OrgViewer("contoso"), q)
		require.NoError(t, err)
		got = append(got, refsOf(p.Cases)...)
		if page == 0 {
			req := f.openReq("contoso")
			req.Question = "phishing again"
			_, _, err := f.svc.Open(ctx, req)
			require.NoError(t, err)
		}
		if !p.More {
			require.Empty(t, p.Next)
			require.Len(t, p.Cases, 3)
			break
		}
		require.Len(t, p.Cases, 10)
		q.Cursor = p.Next
	}
	require.Equal(t, want, got)
}
