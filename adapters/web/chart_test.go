package web

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/casework"
)

// TestWeeklyChart: a column per week, heights in proportion on a
// whole-number axis, the value on each column that has one.
func TestWeeklyChart(t *testing.T) {
	t.Parallel()
	c := weeklyChart("Cases", []weekBar{{Label: "5 Jan", Count: 2}, {Label: "12 Jan", Count: 0}, {Label: "19 Jan", Count: 7}})
	require.Empty(t, c.Empty)
	require.Len(t, c.Rects, 3)
	require.InDelta(t, 2.0/7*c.Rects[2].H, c.Rects[0].H, 0.2, "heights in proportion")
	require.Zero(t, c.Rects[1].H)
	bottom := c.Rects[0].Y + c.Rects[0].H
	for _, r := range c.Rects {
		require.InDelta(t, bottom, r.Y+r.H, 0.2, "columns stand on one baseline (coordinates rounded to 0.1)")
	}
	var axis []string
	for _, x := range c.Texts {
		if x.Class == "axis" && !strings.Contains(x.Text, " ") {
			axis = append(axis, x.Text)
		}
	}
	require.Equal(t, []string{"0", "2", "4", "6", "8"}, axis, "whole-number ticks")
	require.Equal(t, "No weeks in this period.", weeklyChart("Cases", nil).Empty)
}

// TestDurationChart: the scale reaches the smallest target at or above the
// longest bar, so those targets are drawn and the far ones are not; rows
// without cases say so.
func TestDurationChart(t *testing.T) {
	t.Parallel()
	targets := []target{{"high", time.Hour}, {"medium", 4 * time.Hour}, {"low", 24 * time.Hour}}
	c := durationChart("First response", []durationRow{
		{Label: "Contoso", Count: 5, Median: 40 * time.Minute, P90: 2 * time.Hour},
		{Label: "Fabrikam"},
	}, targets)
	var labels []string
	for _, x := range c.Texts {
		if x.Class == "target-label" {
			labels = append(labels, x.Text)
		}
	}
	require.Equal(t, []string{"high 1h", "medium 4h"}, labels)
	require.Len(t, c.Rects, 2, "p90 and median of the one row with cases")
	require.InDelta(t, 3*c.Rects[1].W, c.Rects[0].W, 0.2, "2h is three times 40m")
	var none bool
	for _, x := range c.Texts {
		none = none || x.Text == "no cases yet"
	}
	require.True(t, none)
	require.NotEmpty(t, durationChart("x", []durationRow{{Label: "Contoso"}}, targets).Empty)
}

// TestChartEscapes: chart labels go through html/template like any text.
func TestChartEscapes(t *testing.T) {
	t.Parallel()
	p, err := parsePages()
	require.NoError(t, err)
	c := creditsChart(`<script>alert(1)</script>`, []creditRow{{Label: `Org "<b>x</b>"`, Used: 2, Left: 3}})
	var buf bytes.Buffer
	require.NoError(t, p.byName["report"].ExecuteTemplate(&buf, "chart", c))
	out := buf.String()
	require.NotContains(t, out, "<script>")
	require.NotContains(t, out, "<b>")
	require.Contains(t, out, "&lt;script&gt;alert(1)&lt;/script&gt;")
	require.Contains(t, out, `aria-label="&lt;script&gt;alert(1)&lt;/script&gt;"`)
	require.Equal(t, 2, strings.Count(out, "<rect "))
}

// TestFiguresRoundAsInChat: a share and a duration read on the report page
// as the chat's report rounds them. 199 of 200 read 100% in both, 1 of 8
// 13% in chat and 12% here; 1h 59m 45s read "2 hours" in chat and "1h 59m"
// here.
func TestFiguresRoundAsInChat(t *testing.T) {
	t.Parallel()
	share := func(within, decided int) string {
		return shareText(casework.SLAFigures{Within: within, Decided: decided, HasShare: true})
	}
	require.Equal(t, "99% of 200", share(199, 200))
	require.Equal(t, "13% of 8", share(1, 8))
	require.Equal(t, "63% of 8", share(5, 8))
	require.Equal(t, "100% of 3", share(3, 3))
	for d, want := range map[time.Duration]string{
		time.Hour + 59*time.Minute + 45*time.Second: "2h",
		59*time.Minute + 45*time.Second:             "1h",
		71*time.Hour + 40*time.Minute:               "3d",
		12*time.Minute + 30*time.Second:             "13m",
		59500 * time.Millisecond:                    "1m",
		-90 * time.Second:                           "2m",
	} {
		require.Equal(t, want, durationText(d), "%s", d)
	}
}
