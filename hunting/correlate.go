package hunting

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"
)

// corrAlert is one alert of a batch as correlation sees it.
type corrAlert struct {
	When time.Time
	// Keys are the alert's join keys: strong entities that are not common.
	Keys []Entity
	// Prev is the open incident of the stored alert when this is an update
	// of it (0 otherwise): the alert stays in it.
	Prev int64
	// Stay marks an update of an alert whose incident is closed or merged:
	// it keeps that incident and links nothing.
	Stay bool
	// Follows is the closed incident of an update that brings activity
	// from after its closing: the alert correlates as a new one, and a new
	// incident it opens follows that one.
	Follows int64
}

// candidate is an incident holding a join key, and when it saw the key.
type candidate struct {
	Inc         int64
	First, Last time.Time
	// Closed: the incident is closed. It takes no alert; a new incident
	// that touches it says that it follows it.
	Closed bool
}

// correlationInput is everything correlation decides from, all in memory.
type correlationInput struct {
	Alerts []corrAlert
	// Candidates are the stored incidents holding each join key.
	Candidates map[ekey][]candidate
	// Common keys link nothing (seen on too many devices, or glue between
	// too many incidents).
	Common map[ekey]bool
	// Window is how far apart in time two alerts (or an alert and an
	// incident's sighting of the key) may be and still link.
	Window time.Duration
	// Rare keys (a file or account seen on at most two devices) link over
	// ChainWindow instead, when that is longer.
	Rare        map[ekey]bool
	ChainWindow time.Duration
}

// correlation is where each alert of the batch goes.
type correlation struct {
	// Inc is the existing incident each alert joins, or 0 when it starts
	// (or joins) a new one: then Group is its index among NewIncidents.
	Inc   []int64
	Group []int
	// NewIncidents is how many incidents the batch creates, in order of
	// their first alert; Follows[g] is the closed incident that new
	// incident g follows (0: none).
	NewIncidents int
	Follows      []int64
	// Merges fold younger incidents into the oldest of their component,
	// sorted by From. Alert is the index of the alert that linked them.
	Merges []corrMerge
}

// corrMerge is one incident folded into another by a batch.
type corrMerge struct {
	From, Into int64
	Alert      int
	Reason     string
}

// windowFor is the link window of a key.
func (in *correlationInput) windowFor(k ekey) time.Duration {
	if in.Rare[k] && rareChainKind(k.kind) && in.ChainWindow > in.Window {
		return in.ChainWindow
	}
	return in.Window
}

// chainKinds are the kinds of entity that, when rare, link alerts over the
// chain window: file hashes and accounts.
var chainKinds = []string{string(EntityFile), string(EntityUser)}

// rareChainKind reports whether kind is one of chainKinds.
func rareChainKind(kind string) bool { return slices.Contains(chainKinds, kind) }

// correlate decides which alerts of a batch join which incidents: a
// union-find over the batch's alerts and the stored incidents they link
// to. An alert links to an incident holding one of its keys when its time
// is within the key's window of the incident's sighting of it, and to
// another alert of the batch with the same key when the two are within the
// window of each other (so a chain of alerts, each close to the previous,
// is one incident). A component holding stored incidents keeps the oldest
// (lowest id) and merges the others into it; a component of new alerts
// only becomes one new incident. It is a pure function.
func correlate(in correlationInput) correlation {
	n := len(in.Alerts)
	uf := newUnionFind(n)
	incNode := map[int64]int{}
	node := func(inc int64) int {
		if x, ok := incNode[inc]; ok {
			return x
		}
		x := uf.add()
		incNode[inc] = x
		return x
	}
	type member struct {
		t time.Time
		n int
	}
	byKey := map[ekey][]member{}
	linkReason := map[int]string{}
	follows := map[int]int64{} // alert -> closed incident it touched (the latest)
	for i, a := range in.Alerts {
		if a.Stay {
			continue
		}
		if a.Prev != 0 {
			uf.union(i, node(a.Prev))
		}
		if a.Follows != 0 {
			follows[i] = max(follows[i], a.Follows)
		}
		for _, e := range a.Keys {
			k := ekey{string(e.Kind), e.Value}
			if in.Common[k] {
				continue
			}
			w := in.windowFor(k)
			byKey[k] = append(byKey[k], member{a.When, i})
			for _, c := range in.Candidates[k] {
				if a.When.Before(c.First.Add(-w)) || a.When.After(c.Last.Add(w)) {
					continue
				}
				if c.Closed {
					follows[i] = max(follows[i], c.Inc)
					continue
				}
				x := node(c.Inc)
				if uf.find(x) != uf.find(i) {
					linkReason[i] = fmt.Sprintf("shared %s %s", e.Kind, e.Display)
				}
				uf.union(i, x)
			}
		}
	}
	for k, ms := range byKey {
		if len(ms) < 2 {
			continue
		}
		w := in.windowFor(k)
		sort.SliceStable(ms, func(a, b int) bool { return ms[a].t.Before(ms[b].t) })
		for j := 1; j < len(ms); j++ {
			if ms[j].t.Sub(ms[j-1].t) <= w {
				uf.union(ms[j-1].n, ms[j].n)
			}
		}
	}
	// Components: survivor = oldest existing incident; others merge into it.
	compInc := map[int][]int64{}
	for inc, x := range incNode {
		r := uf.find(x)
		compInc[r] = append(compInc[r], inc)
	}
	out := correlation{Inc: make([]int64, n), Group: make([]int, n)}
	survivor := map[int]int64{}
	for r, incs := range compInc {
		slices.Sort(incs)
		survivor[r] = incs[0]
		for _, from := range incs[1:] {
			out.Merges = append(out.Merges, corrMerge{From: from, Into: incs[0], Alert: -1})
		}
	}
	slices.SortFunc(out.Merges, func(a, b corrMerge) int { return cmp.Compare(a.From, b.From) })
	groupOf := map[int]int{} // component root -> new incident index
	for i, a := range in.Alerts {
		out.Group[i] = -1
		if a.Stay {
			out.Inc[i] = a.Prev
			continue
		}
		r := uf.find(i)
		if inc, ok := survivor[r]; ok {
			out.Inc[i] = inc
			continue
		}
		g, ok := groupOf[r]
		if !ok {
			g = out.NewIncidents
			groupOf[r] = g
			out.NewIncidents++
			out.Follows = append(out.Follows, 0)
		}
		out.Group[i] = g
		out.Follows[g] = max(out.Follows[g], follows[i])
	}
	// Explain merges: the first alert of the component that linked them.
	for j := range out.Merges {
		m := &out.Merges[j]
		for i := range in.Alerts {
			if out.Inc[i] != m.Into || in.Alerts[i].Stay {
				continue
			}
			m.Alert = i
			m.Reason = cmp.Or(linkReason[i], "shared entity")
			if linkReason[i] != "" {
				break
			}
		}
	}
	return out
}

type unionFind struct{ parent []int }

func newUnionFind(n int) *unionFind {
	u := &unionFind{parent: make([]int, n)}
	for i := range u.parent {
		u.parent[i] = i
	}
	return u
}

func (u *unionFind) add() int {
	u.parent = append(u.parent, len(u.parent))
	return len(u.parent) - 1
}

func (u *unionFind) find(x int) int {
	for u.parent[x] != x {
		u.parent[x] = u.parent[u.parent[x]]
		x = u.parent[x]
	}
	return x
}

func (u *unionFind) union(a, b int) {
	ra, rb := u.find(a), u.find(b)
	if ra != rb {
		u.parent[rb] = ra
	}
}
