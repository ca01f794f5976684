package hunting

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCorrelatePure(t *testing.T) {
	t.Parallel()
	at := t0
	h := time.Hour
	file := func(v string) Entity { return Entity{Kind: EntityFile, Value: v, Display: v + ".exe", JoinKey: true} }
	dev := func(v string) Entity { return Entity{Kind: EntityDevice, Value: v, Display: v, JoinKey: true} }
	user := func(v string) Entity { return Entity{Kind: EntityUser, Value: v, Display: v, JoinKey: true} }
	key := func(e Entity) ekey { return ekey{string(e.Kind), e.Value} }
	tests := []struct {
		name string
		in   correlationInput
		want correlation
	}{
		{"no alerts", correlationInput{Window: 24 * h}, correlation{Inc: []int64{}, Group: []int{}}},
		{"one alert, nothing stored: one new incident", correlationInput{Window: 24 * h, Alerts: []corrAlert{
			{When: at, Keys: []Entity{dev("pc1")}},
		}}, correlation{Inc: []int64{0}, Group: []int{0}, NewIncidents: 1, Follows: []int64{0}}},
		{"a chain of alerts on one device, each within the window of the previous", correlationInput{Window: 24 * h, Alerts: []corrAlert{
			{When: at, Keys: []Entity{dev("pc1")}},
			{When: at.Add(20 * h), Keys: []Entity{dev("pc1")}},
			{When: at.Add(40 * h), Keys: []Entity{dev("pc1")}},
		}}, correlation{Inc: []int64{0, 0, 0}, Group: []int{0, 0, 0}, NewIncidents: 1, Follows: []int64{0}}},
		{"two alerts on one device beyond the window", correlationInput{Window: 24 * h, Alerts: []corrAlert{
			{When: at, Keys: []Entity{dev("pc1")}},
			{When: at.Add(25 * h), Keys: []Entity{dev("pc1")}},
		}}, correlation{Inc: []int64{0, 0}, Group: []int{0, 1}, NewIncidents: 2, Follows: []int64{0, 0}}},
		{"disjoint alerts: new incidents in order of their first alert", correlationInput{Window: 24 * h, Alerts: []corrAlert{
			{When: at, Keys: []Entity{dev("b")}},
			{When: at, Keys: []Entity{dev("a")}},
			{When: at, Keys: []Entity{dev("b")}},
		}}, correlation{Inc: []int64{0, 0, 0}, Group: []int{0, 1, 0}, NewIncidents: 2, Follows: []int64{0, 0}}},
		{"joins the stored incident holding its key", correlationInput{Window: 24 * h,
			Alerts:     []corrAlert{{When: at, Keys: []Entity{file("x")}}},
			Candidates: map[ekey][]candidate{key(file("x")): {{Inc: 7, First: at.Add(-30 * h), Last: at.Add(-2 * h)}}},
		}, correlation{Inc: []int64{7}, Group: []int{-1}}},
		{"a stored incident out of reach is not joined", correlationInput{Window: 24 * h,
			Alerts:     []corrAlert{{When: at, Keys: []Entity{file("x")}}},
			Candidates: map[ekey][]candidate{key(file("x")): {{Inc: 7, First: at.Add(-60 * h), Last: at.Add(-25 * h)}}},
		}, correlation{Inc: []int64{0}, Group: []int{0}, NewIncidents: 1, Follows: []int64{0}}},
		{"a common key links nothing", correlationInput{Window: 24 * h,
			Alerts: []corrAlert{
				{When: at, Keys: []Entity{file("updater")}},
				{When: at, Keys: []Entity{file("updater")}},
			},
			Candidates: map[ekey][]candidate{key(file("updater")): {{Inc: 7, First: at, Last: at}}},
			Common:     map[ekey]bool{key(file("updater")): true},
		}, correlation{Inc: []int64{0, 0}, Group: []int{0, 1}, NewIncidents: 2, Follows: []int64{0, 0}}},
		{"an alert linking two stored incidents merges the younger into the older", correlationInput{Window: 24 * h,
			Alerts: []corrAlert{
				{When: at, Keys: []Entity{dev("pc-b")}},
				{When: at, Keys: []Entity{dev("pc-a"), file("implant")}},
			},
			Candidates: map[ekey][]candidate{
				key(dev("pc-a")):     {{Inc: 3, First: at.Add(-h), Last: at}},
				key(file("implant")): {{Inc: 9, First: at.Add(-h), Last: at}},
			},
		}, correlation{Inc: []int64{0, 3}, Group: []int{0, -1}, NewIncidents: 1, Follows: []int64{0},
			Merges: []corrMerge{{From: 9, Into: 3, Alert: 1, Reason: "shared file implant.exe"}}}},
		{"an update stays in its open incident and links it to others", correlationInput{Window: 24 * h,
			Alerts: []corrAlert{
				{When: at, Prev: 12, Keys: []Entity{user("u1")}},
				{When: at, Keys: []Entity{user("u1")}},
			},
		}, correlation{Inc: []int64{12, 12}, Group: []int{-1, -1}}},
		{"an update of a closed incident's alert stays there and links nothing", correlationInput{Window: 24 * h,
			Alerts: []corrAlert{
				{When: at, Prev: 4, Stay: true, Keys: nil},
				{When: at, Keys: []Entity{dev("pc1")}},
			},
			Candidates: map[ekey][]candidate{key(dev("pc1")): {{Inc: 5, First: at, Last: at}}},
		}, correlation{Inc: []int64{4, 5}, Group: []int{-1, -1}}},
		{"a rare file links over the chain window", correlationInput{Window: 24 * h, ChainWindow: 7 * 24 * h,
			Alerts:     []corrAlert{{When: at, Keys: []Entity{dev("pc1"), file("implant")}}},
			Candidates: map[ekey][]candidate{key(file("implant")): {{Inc: 7, First: at.Add(-5 * 24 * h), Last: at.Add(-27 * h)}}},
			Rare:       map[ekey]bool{key(file("implant")): true},
		}, correlation{Inc: []int64{7}, Group: []int{-1}}},
		{"a rare file beyond the chain window does not", correlationInput{Window: 24 * h, ChainWindow: 7 * 24 * h,
			Alerts:     []corrAlert{{When: at, Keys: []Entity{file("implant")}}},
			Candidates: map[ekey][]candidate{key(file("implant")): {{Inc: 7, First: at.Add(-9 * 24 * h), Last: at.Add(-8 * 24 * h)}}},
			Rare:       map[ekey]bool{key(file("implant")): true},
		}, correlation{Inc: []int64{0}, Group: []int{0}, NewIncidents: 1, Follows: []int64{0}}},
		{"a file that is not rare keeps the correlation window", correlationInput{Window: 24 * h, ChainWindow: 7 * 24 * h,
			Alerts:     []corrAlert{{When: at, Keys: []Entity{file("tool")}}},
			Candidates: map[ekey][]candidate{key(file("tool")): {{Inc: 7, First: at.Add(-30 * h), Last: at.Add(-25 * h)}}},
		}, correlation{Inc: []int64{0}, Group: []int{0}, NewIncidents: 1, Follows: []int64{0}}},
		{"a rare account chains alerts of one batch a day apart", correlationInput{Window: 24 * h, ChainWindow: 7 * 24 * h,
			Alerts: []corrAlert{
				{When: at, Keys: []Entity{user("svc-x")}},
				{When: at.Add(26 * h), Keys: []Entity{user("svc-x")}},
				{When: at.Add(52 * h), Keys: []Entity{user("svc-x")}},
			},
			Rare: map[ekey]bool{key(user("svc-x")): true},
		}, correlation{Inc: []int64{0, 0, 0}, Group: []int{0, 0, 0}, NewIncidents: 1, Follows: []int64{0}}},
		{"a rare IP keeps the correlation window (only files and accounts chain)", correlationInput{Window: 24 * h, ChainWindow: 7 * 24 * h,
			Alerts: []corrAlert{
				{When: at, Keys: []Entity{{Kind: EntityIP, Value: "203.0.113.9", JoinKey: true}}},
				{When: at.Add(26 * h), Keys: []Entity{{Kind: EntityIP, Value: "203.0.113.9", JoinKey: true}}},
			},
			Rare: map[ekey]bool{{string(EntityIP), "203.0.113.9"}: true},
		}, correlation{Inc: []int64{0, 0}, Group: []int{0, 1}, NewIncidents: 2, Follows: []int64{0, 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := correlate(tc.in)
			require.Equal(t, tc.want, got)
		})
	}
}
