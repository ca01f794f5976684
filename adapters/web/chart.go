package web

import (
	"math"
	"strconv"
	"time"

	"github.com/threatdesk/threatdesk/internal/plural"
)

// Charts are inline SVG drawn on the server: Go computes every shape's
// geometry here, and templates/chart.html writes the shapes, so that every
// label goes through html/template's escaping like any other text. Colours
// come from the page's stylesheet (classes), never from style attributes,
// which the Content-Security-Policy would block. Each chart has a title
// (<title>, aria-label) and the page shows its numbers in a table as well.

// chart is one SVG chart.
type chart struct {
	Title string
	W, H  int
	Rects []rect
	Lines []line
	Texts []text
	// Empty, when set, is said instead of a chart.
	Empty string
}

// rect is a bar; Tip is its tooltip (<title>).
type rect struct {
	X, Y, W, H float64
	Class, Tip string
}

type line struct {
	X1, Y1, X2, Y2 float64
	Class          string
}

// text is a label; Anchor is start, middle or end.
type text struct {
	X, Y          float64
	Anchor, Class string
	Text          string
}

// round1 keeps SVG coordinates short.
func round1(v float64) float64 { return math.Round(v*10) / 10 }

func (c *chart) bar(x, y, w, h float64, class, tip string) {
	c.Rects = append(c.Rects, rect{X: round1(x), Y: round1(y), W: round1(math.Max(w, 0)), H: round1(math.Max(h, 0)), Class: class, Tip: tip})
}

func (c *chart) rule(x1, y1, x2, y2 float64, class string) {
	c.Lines = append(c.Lines, line{X1: round1(x1), Y1: round1(y1), X2: round1(x2), Y2: round1(y2), Class: class})
}

func (c *chart) label(x, y float64, anchor, class, s string) {
	c.Texts = append(c.Texts, text{X: round1(x), Y: round1(y), Anchor: anchor, Class: class, Text: s})
}

// niceCeil is a round number at or above v for an axis: 1, 2, 5 × 10^n.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// weekBar is one week of the cases-per-week chart.
type weekBar struct {
	Label string
	Count int
	Tip   string
}

// weeklyChart draws a column per week with a count axis.
func weeklyChart(title string, weeks []weekBar) chart {
	c := chart{Title: title, W: 720, H: 240}
	if len(weeks) == 0 {
		c.Empty = "No weeks in this period."
		return c
	}
	const left, right, top, bottom = 40.0, 10.0, 14.0, 36.0
	plotW, plotH := float64(c.W)-left-right, float64(c.H)-top-bottom
	maxV := 0
	for _, w := range weeks {
		maxV = max(maxV, w.Count)
	}
	// Whole-number ticks, at most about five.
	step := math.Max(1, niceCeil(float64(maxV)/4))
	ticks := math.Max(1, math.Ceil(float64(maxV)/step))
	scale := step * ticks
	for i := 0; i <= int(ticks); i++ {
		v := step * float64(i)
		y := top + plotH - v/scale*plotH
		c.rule(left, y, left+plotW, y, "grid")
		c.label(left-6, y+4, "end", "axis", strconv.FormatFloat(v, 'f', -1, 64))
	}
	slot := plotW / float64(len(weeks))
	bw := math.Min(slot*0.7, 48)
	every := int(math.Ceil(float64(len(weeks)) / 14)) // at most 14 labels
	for i, w := range weeks {
		x := left + slot*float64(i) + (slot-bw)/2
		h := float64(w.Count) / scale * plotH
		c.bar(x, top+plotH-h, bw, h, "bar", w.Tip)
		if w.Count > 0 {
			c.label(x+bw/2, top+plotH-h-3, "middle", "value", strconv.Itoa(w.Count))
		}
		if i%every == 0 {
			c.label(x+bw/2, top+plotH+16, "middle", "axis", w.Label)
		}
	}
	c.rule(left, top+plotH, left+plotW, top+plotH, "baseline")
	return c
}

// durationRow is one row of a time chart: a median and a 90th percentile.
type durationRow struct {
	Label       string
	Count       int
	Median, P90 time.Duration
}

// target is an SLA target line.
type target struct {
	Label string
	D     time.Duration
}

// durationChart draws, per row, the 90th percentile as a light bar and the
// median as a dark one over it, against the SLA targets as dashed lines.
// The scale reaches the smallest target at or above the longest bar, so
// that the targets the figures are near are in view.
func durationChart(title string, rows []durationRow, targets []target) chart {
	c := chart{Title: title, W: 720}
	var maxD time.Duration
	have := false
	for _, r := range rows {
		if r.Count > 0 {
			have = true
			maxD = max(maxD, r.P90, r.Median)
		}
	}
	if !have {
		c.H = 40
		c.Empty = "No case of this period has reached this point yet."
		return c
	}
	scale := maxD
	for _, t := range targets { // targets in increasing order
		if t.D >= maxD {
			scale = t.D
			break
		}
		scale = max(scale, t.D)
	}
	scale = time.Duration(float64(scale) * 1.08)
	const left, right, top, rowH, bottom = 130.0, 70.0, 30.0, 34.0, 24.0
	plotW := float64(c.W) - left - right
	c.H = int(top + rowH*float64(len(rows)) + bottom)
	x := func(d time.Duration) float64 { return left + float64(d)/float64(scale)*plotW }
	for i, r := range rows {
		y := top + rowH*float64(i)
		c.label(left-8, y+rowH/2+4, "end", "axis", r.Label)
		if r.Count == 0 {
			c.label(left+4, y+rowH/2+4, "start", "muted", "no cases yet")
			continue
		}
		c.bar(left, y+6, x(r.P90)-left, rowH-12, "bar-light", r.Label+": 90th percentile "+durationText(r.P90))
		c.bar(left, y+11, x(r.Median)-left, rowH-22, "bar", r.Label+": median "+durationText(r.Median)+" over "+plural.Count(r.Count, "case", "cases"))
		c.label(x(r.P90)+6, y+rowH/2+4, "start", "value", durationText(r.Median)+" / "+durationText(r.P90))
	}
	bottomY := top + rowH*float64(len(rows))
	c.rule(left, top-4, left, bottomY, "baseline")
	for _, t := range targets {
		if t.D > scale {
			continue
		}
		tx := x(t.D)
		c.rule(tx, top-4, tx, bottomY, "target")
		c.label(tx, top-10, "middle", "target-label", t.Label+" "+durationText(t.D))
	}
	c.label(left, bottomY+16, "start", "muted", "dark: median · light: 90th percentile · dashed: SLA target by priority")
	return c
}

// creditRow is one org of the credits chart.
type creditRow struct {
	Label      string
	Used, Left int
}

// creditsChart draws, per org, the credits the period's cases used and the
// balance left, side by side in one bar.
func creditsChart(title string, rows []creditRow) chart {
	c := chart{Title: title, W: 720}
	if len(rows) == 0 {
		c.H = 40
		c.Empty = "No org in this report."
		return c
	}
	const left, right, top, rowH, bottom = 130.0, 120.0, 8.0, 30.0, 22.0
	plotW := float64(c.W) - left - right
	c.H = int(top + rowH*float64(len(rows)) + bottom)
	maxV := 1
	for _, r := range rows {
		maxV = max(maxV, r.Used+max(r.Left, 0))
	}
	unit := plotW / float64(maxV)
	for i, r := range rows {
		y := top + rowH*float64(i)
		c.label(left-8, y+rowH/2+4, "end", "axis", r.Label)
		used := float64(r.Used) * unit
		c.bar(left, y+6, used, rowH-12, "bar", r.Label+": "+strconv.Itoa(r.Used)+" credits used")
		c.bar(left+used, y+6, float64(max(r.Left, 0))*unit, rowH-12, "bar-light", r.Label+": "+strconv.Itoa(r.Left)+" credits left")
		c.label(left+used+float64(max(r.Left, 0))*unit+6, y+rowH/2+4, "start", "value",
			strconv.Itoa(r.Used)+" used · "+strconv.Itoa(r.Left)+" left")
	}
	c.label(left, top+rowH*float64(len(rows))+14, "start", "muted", "dark: used by the period's cases · light: left now")
	return c
}
