package bot

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestCutRunes(t *testing.T) {
	t.Parallel()
	require.Equal(t, "short", cut("short", 10))
	s := strings.Repeat("é", 20) + "🙂🙂"
	got := cut(s, 10)
	require.True(t, utf8.ValidString(got))
	require.Equal(t, 10, utf8.RuneCountInString(got))
	require.True(t, strings.HasSuffix(got, "…"))
	require.Equal(t, "…", cut("🙂🙂🙂", 1))
}

// TestCreditsEventRendersNothing: a credits change is bookkeeping; it must
// render to no message (and never block its case's stream).
func TestCreditsEventRendersNothing(t *testing.T) {
	t.Parallel()
	cw := &CaseworkCases{}
	ev, ok, err := cw.DecodeEvent("case.credits_changed", []byte(`{"ref":"EOD-1","org":"contoso","delta":-1,"reason":"opened"}`))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, CaseEvent{Kind: CaseCredits, Ref: "EOD-1", Detail: "opened"}, ev)
	b := &Bot{cfg: unitConfig(), core: &core{cases: cw}}
	parts, err := b.renderCase(t.Context(), ev)
	require.NoError(t, err)
	require.Empty(t, parts)
}

// TestIncidentResolvedDecodes: hunting's incident.resolved edits the card
// and says the resolution in its thread, in hunting's sentence (it used to
// have no renderer and went dead).
func TestIncidentResolvedDecodes(t *testing.T) {
	t.Parallel()
	h := &HuntingIncidents{}
	ev, ok, err := h.DecodeEvent("incident.resolved", []byte(`{"org":"contoso","incident_id":7,"status":"closed","final":true,"by":"U0A","classification":"true_positive","note":"Resolved by U0A as true positive"}`))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, IncidentEvent{IncidentID: "7", Org: "contoso", Action: "update", Note: "Resolved by U0A as true positive"}, ev)
}

func TestParagraphsCutLongUserText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("ø", 5000) + "\n" + strings.Repeat("line\n", 100)
	ls := paragraphs(long)
	total := 0
	for _, l := range ls {
		for _, s := range l {
			require.True(t, s.Untrusted)
			total += utf8.RuneCountInString(s.Text)
		}
	}
	require.LessOrEqual(t, total, maxTextRunes)
	require.True(t, strings.HasSuffix(ls[len(ls)-1][0].Text, "…"))
	ls = paragraphs(strings.Repeat("x\n", 100))
	require.Len(t, ls, maxParagraphs)
}

// TestIncidentsFooterFitsTheList: the "and N more" footer of a list of
// incidents says what fits the list asked for; under quiet it does not send
// the analyst to the command they just ran.
func TestIncidentsFooterFitsTheList(t *testing.T) {
	t.Parallel()
	b := &Bot{}
	w := who{user: User{Platform: Slack, ID: "U1"}, roles: []Role{RoleMember}, org: &Org{ID: "contoso", Name: "Contoso"}}
	l := IncidentList{Incidents: []IncidentLine{{ID: "9", Org: "contoso", Title: "Odd LDAP queries", Status: "open"}}, More: 3}
	quiet := plainLine(b.incidentsMessage(w, IncidentsQuiet, []string{"contoso"}, l).Footer)
	require.Equal(t, "and 3 more (Older incidents shows the next 3)", quiet, "not sent to the command just run")
	open := plainLine(b.incidentsMessage(w, IncidentsOpen, []string{"contoso"}, l).Footer)
	require.Contains(t, open, "/experts incidents quiet lists only those never posted")
	w.user.Platform = Discord // the list is an option there
	open = plainLine(b.incidentsMessage(w, IncidentsOpen, []string{"contoso"}, l).Footer)
	require.Contains(t, open, "/experts incidents filter:quiet lists only those never posted")
}

func plainLine(l Line) string {
	var sb strings.Builder
	for _, sp := range l {
		sb.WriteString(sp.Text)
	}
	return sb.String()
}

// TestKeepWrittenGivesBackEveryTypedField: a refused submission gives back
// what its author typed: the form's text, and a sample request's file too.
func TestKeepWrittenGivesBackEveryTypedField(t *testing.T) {
	t.Parallel()
	row := inboundRow{event: inboundEvent{Submission: &Submission{FormID: formSample,
		Values: map[string]string{fieldText: "need the dropper\nfrom ws-7", fieldFile: "invoice.pdf.exe"}}}}
	got := keepWritten(textMessage("Refused."), row)
	var lines []string
	for _, l := range got.Text {
		lines = append(lines, plainLine(l))
	}
	require.Equal(t, []string{"Refused.", "What you wrote, to send it again:"}, lines)
	require.Equal(t, "need the dropper\nfrom ws-7\n\ninvoice.pdf.exe", got.Quote, "the author's words, as a quote shown literally")
	// Whole, past a relay's 1,800 characters: a form takes 3,000.
	long := strings.Repeat("why did ws-7 beacon? ", 140)[:2900]
	got = keepWritten(textMessage("Refused."), inboundRow{event: inboundEvent{Submission: &Submission{FormID: formAsk, Values: map[string]string{fieldQuestion: long}}}})
	require.Equal(t, strings.TrimSpace(long), got.Quote)
	// A form with nothing typed gets nothing added.
	empty := inboundRow{event: inboundEvent{Submission: &Submission{FormID: formResolveIncident, Values: map[string]string{fieldClassification: "false_positive"}}}}
	require.Len(t, keepWritten(textMessage("Refused."), empty).Text, 1)
	require.Empty(t, keepWritten(textMessage("Refused."), empty).Quote)
}

// TestThreadMarksOrderAsTime: a thread's mark is a number that grows with
// time on both platforms, and reads back as the id it came from.
func TestThreadMarksOrderAsTime(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		p        Platform
		old, new string
	}{
		{Slack, "1700000000.000999", "1700000001.000001"},
		{Discord, "999999999999999999", "1300000000000000000"},
	} {
		o, ok1 := markValue(c.p, c.old)
		n, ok2 := markValue(c.p, c.new)
		require.True(t, ok1 && ok2, "%s", c.p)
		require.Less(t, o, n, "%s: %s before %s", c.p, c.old, c.new)
		require.Equal(t, c.old, markID(c.p, o))
		require.Equal(t, c.new, markID(c.p, n))
	}
	for _, bad := range []string{"r1", "1700000000", "1700000000.1", "-5", ""} {
		_, ok := markValue(Slack, bad)
		require.False(t, ok, "slack %q", bad)
	}
	_, ok := markValue(Discord, "r1")
	require.False(t, ok)
}

// TestRetry: a call failing for a while is tried again up to its bound; a
// permanent failure and an ended context stop at once.
func TestRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	calls := 0
	err := Retry(ctx, 2, func() error { calls++; return errors.New("brief") })
	require.EqualError(t, err, "brief")
	require.Equal(t, 2, calls)

	calls = 0
	require.NoError(t, Retry(ctx, 3, func() error {
		calls++
		if calls < 2 {
			return RateLimitError(time.Millisecond, errors.New("429"))
		}
		return nil
	}))
	require.Equal(t, 2, calls)

	calls = 0
	err = Retry(ctx, 5, func() error { calls++; return PermanentError("gone", "", errors.New("gone")) })
	require.Error(t, err)
	require.Equal(t, 1, calls, "permanent: not again")

	done, cancel := context.WithCancel(ctx)
	cancel()
	calls = 0
	require.ErrorIs(t, Retry(done, 5, func() error { calls++; return errors.New("brief") }), context.Canceled)
	require.Equal(t, 1, calls)
}
