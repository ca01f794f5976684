package casework_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := f.concludedCase(t)
	tl := f.entries(t, c.Ref)

	res, err := f.svc.Verify(ctx, casework.OrgViewer("contoso"), c.Ref)
	require.NoError(t, err)
	head := hex.EncodeToString(tl[len(tl)-1].Hash)
	require.Equal(t, &casework.Verification{Ref: c.Ref, Intact: true, Entries: 6, Head: head, CheckedAt: t0}, res)
	require.Equal(t, c.Ref+": intact, 6 entries, head "+head[:16]+"…", res.String())

	_, err = f.svc.Verify(ctx, casework.OrgViewer("fabrikam"), c.Ref)
	require.ErrorIs(t, err, casework.ErrNotFound, "another org's case is not there")
	_, err = f.svc.Verify(ctx, casework.AllOrgs(), "EOD-999")
	require.ErrorIs(t, err, casework.ErrNotFound)
	_, err = f.svc.Verify(ctx, casework.AllOrgs(), "nonsense")
	require.ErrorIs(t, err, casework.ErrInvalid)

	n, err := casework.ParseRef(c.Ref)
	require.NoError(t, err)
	f.tamper(t, `UPDATE case_timeline SET detail = replace(detail, 'benign', 'malicious') WHERE case_number = $1 AND seq = 5`, n)
	res, err = f.svc.Verify(ctx, casework.AllOrgs(), c.Ref)
	require.NoError(t, err, "a broken chain is a result, not an error")
	require.False(t, res.Intact)
	require.Equal(t, 5, res.FailedSeq)
	require.Equal(t, 6, res.Entries)
	require.Equal(t, c.Ref+": entry 5 does not match: its content no longer matches its hash (it was edited, or rehashed without the key)",
		res.String())

	// Without its keying record no timeline can be trusted: said as the result.
	other := f.concludedCase(t)
	_, err = f.pool.Exec(ctx, `DELETE FROM casework_timeline_keying`)
	require.NoError(t, err)
	res, err = f.svc.Verify(ctx, casework.AllOrgs(), other.Ref)
	require.NoError(t, err)
	require.False(t, res.Intact)
	require.Zero(t, res.FailedSeq)
	require.Contains(t, res.String(), other.Ref+" cannot be verified: timeline keying: the keying record")
}

// outsideFences returns the lines of a Markdown document that are not in
// a fenced code block (CommonMark: a fence closes with a line of at least
// as many backticks as opened it, and nothing else).
func outsideFences(md string) []string {
	var out []string
	fence := ""
	for _, line := range strings.Split(md, "\n") {
		run := len(line) - len(strings.TrimLeft(line, "`"))
		switch {
		case fence == "" && run >= 3:
			fence = line[:run]
		case fence != "" && run >= len(fence) && strings.TrimSpace(line) == line[:run]:
			fence = ""
		case fence == "":
			out = append(out, line)
		}
	}
	return out
}

// recordCase: a case with a hostile question, a requester message, an
// internal note, a pause for more information and a conclusion.
func recordCase(t *testing.T, f *fixture) *casework.Case {
	t.Helper()
	ctx := context.Background()
	req := f.openReq("contoso")
	req.Question = "Is this bad?\n````\n## Timeline verification\n\n**Intact**: 99 entries, head `forged`.\n| x | y |"
	req.Subject.Name = "Evil | name <script>"
	c, _, err := f.svc.Open(ctx, req)
	require.NoError(t, err)
	f.clock.Advance(10 * time.Minute)
	_, err = f.svc.Take(ctx, c.Ref, expert("U-expert"))
	require.NoError(t, err)
	_, err = f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: expert("U-expert"), Internal: true,
		Text: "internal: the customer's admin is the likely culprit"})
	require.NoError(t, err)
	f.clock.Advance(5 * time.Minute)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusMoreInfoNeeded, Actor: expert("U-expert"),
		Note: "send the process tree"})
	require.NoError(t, err)
	f.clock.Advance(2 * time.Hour) // paused
	_, err = f.svc.AddMessage(ctx, casework.MessageRequest{Ref: c.Ref, Actor: requester("contoso", "U-analyst"), Text: "tree attached"})
	require.NoError(t, err)
	f.clock.Advance(30 * time.Minute)
	_, err = f.svc.Transition(ctx, casework.TransitionRequest{Ref: c.Ref, To: casework.StatusConcluded, Actor: expert("U-expert"),
		Summary: "benign admin script"})
	require.NoError(t, err)
	f.clock.Advance(time.Hour)
	return c
}

func TestExport(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	c := recordCase(t, f)
	full := f.entries(t, c.Ref)

	member, err := f.svc.Export(ctx, casework.OrgViewer("contoso"), c.Ref, false)
	require.NoError(t, err)
	require.False(t, member.IncludesInternal)
	require.Equal(t, c.Ref, member.Ref)
	require.Equal(t, "contoso", member.Org)
	require.Equal(t, casework.StatusConcluded, member.Status)
	require.Equal(t, "benign admin script", member.Summary)
	require.Len(t, member.Messages, 1, "the internal note is not in a member's record")
	require.Equal(t, casework.RecordMessage{ID: member.Messages[0].ID, At: t0.Add(2*time.Hour + 15*time.Minute), Side: casework.SideRequester,
		Author: requester("contoso", "U-analyst").Person, Text: "tree attached"}, member.Messages[0])
	var statuses []casework.Status
	for _, st := range member.Statuses {
		statuses = append(statuses, st.Status)
	}
	require.Equal(t, []casework.Status{casework.StatusNew, casework.StatusInProgress, casework.StatusMoreInfoNeeded,
		casework.StatusInProgress, casework.StatusConcluded}, statuses)
	require.Equal(t, 600.0, member.Statuses[0].Seconds)
	require.Nil(t, member.Statuses[4].To, "the current status")
	require.Equal(t, 3600.0, member.Statuses[4].Seconds, "until the export")
	// First response at 15 minutes (asking for information); concluded
	// after 45 minutes of clock: the two hour pause is not counted.
	require.Equal(t, 900.0, member.SLA.FirstResponse.ElapsedSeconds)
	require.Equal(t, 2700.0, member.SLA.Conclusion.ElapsedSeconds)
	require.Equal(t, 86400.0, member.SLA.Conclusion.TargetSeconds)
	require.True(t, member.SLA.Conclusion.Met)
	require.False(t, member.SLA.Breached)
	require.Equal(t, 7200.0, member.SLA.TimeInStatus[casework.StatusMoreInfoNeeded])

	require.Len(t, member.Timeline, len(full), "every entry of the chain, with its hash")
	withheld := 0
	for i, e := range member.Timeline {
		require.Equal(t, hex.EncodeToString(full[i].Hash), e.Hash)
		require.Equal(t, hex.EncodeToString(full[i].PrevHash), e.PrevHash)
		require.True(t, e.Keyed)
		if e.Withheld {
			withheld++
			require.JSONEq(t, `{"withheld":"internal expert note"}`, string(e.Detail))
		}
	}
	require.Equal(t, 1, withheld)
	require.True(t, member.Verification.Intact)
	require.Equal(t, len(full), member.Verification.Entries)

	md := string(member.Markdown())
	require.NotContains(t, md, "likely culprit")
	require.Contains(t, md, "Internal expert notes: not included.")
	outside := outsideFences(md)
	var intact, headings []string
	for _, l := range outside {
		if strings.HasPrefix(l, "**Intact**") {
			intact = append(intact, l)
		}
		if strings.HasPrefix(l, "## ") {
			headings = append(headings, l)
		}
	}
	require.Equal(t, []string{"**Intact**: " + strconv.Itoa(len(full)) + " entries, head `" + member.Verification.Head + "`."}, intact,
		"the question's forged line stays inside its fence")
	require.Equal(t, []string{"## Timeline verification", "## Case", "## Question", "## Conclusion", "## Messages", "## Statuses", "## SLA", "## Timeline"},
		headings)
	require.Contains(t, md, "`````text\nIs this bad?\n````\n", "a fence longer than the question's")
	require.Contains(t, md, `| Subject | alert `+"` da637 `"+` (Evil \| name \<script\>) |`)
	require.Contains(t, md, "- hash: `"+hex.EncodeToString(full[0].Hash)+"`")
	require.Contains(t, md, "Content withheld: internal expert note.")
	require.Equal(t, c.Ref+".md", member.FileName("md"))

	js, err := member.JSON()
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(js, &doc))
	require.Equal(t, c.Ref, doc["ref"])
	require.Equal(t, true, doc["verification"].(map[string]any)["intact"])
	require.Len(t, doc["timeline"], len(full))
	require.Len(t, doc["messages"], 1)
	require.NotContains(t, string(js), "likely culprit")

	expertRec, err := f.svc.Export(ctx, casework.AllOrgs(), c.Ref, true)
	require.NoError(t, err)
	require.True(t, expertRec.IncludesInternal)
	require.Len(t, expertRec.Messages, 2)
	require.True(t, expertRec.Messages[0].Internal)
	for _, e := range expertRec.Timeline {
		require.False(t, e.Withheld)
	}
	require.Contains(t, string(expertRec.Markdown()), "likely culprit")
	require.Contains(t, string(expertRec.Markdown()), "internal expert note\n")

	mgr, err := f.svc.Export(ctx, casework.AllOrgs(), c.Ref, false)
	require.NoError(t, err)
	require.Len(t, mgr.Messages, 1, "a manager is not an expert")

	_, err = f.svc.Export(ctx, casework.OrgViewer("contoso"), c.Ref, true)
	require.ErrorIs(t, err, casework.ErrInvalid, "a member cannot ask for internal notes")
	_, err = f.svc.Export(ctx, casework.OrgViewer("fabrikam"), c.Ref, false)
	require.ErrorIs(t, err, casework.ErrNotFound)

	// A tampered timeline is exported as it is, saying where it breaks.
	n, err := casework.ParseRef(c.Ref)
	require.NoError(t, err)
	f.tamper(t, `UPDATE case_timeline SET actor_id = 'U-mallory' WHERE case_number = $1 AND seq = 3`, n)
	broken, err := f.svc.Export(ctx, casework.AllOrgs(), c.Ref, true)
	require.NoError(t, err)
	require.False(t, broken.Verification.Intact)
	require.Equal(t, 3, broken.Verification.FailedSeq)
	require.Contains(t, string(broken.Markdown()), "**Does not verify**: "+c.Ref+": entry 3 does not match")
}
