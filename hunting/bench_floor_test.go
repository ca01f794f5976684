package hunting

import (
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"
)

// BenchmarkIntakeFloor4Senders is the floor under BenchmarkIntakeHTTP4Senders:
// the same requests from the same four senders, through the same body
// reading, splitting and decoding, but each request only COPYs its alerts
// into hunting_alerts in its own transaction and commits, with no lock, no
// correlation, no entities and no incidents. It is what any intake that
// stores each alert durably before answering must spend at least, so the
// distance between the two is all that correlation could ever win back.
//
// Point TEST_DATABASE_URL at a server with fsync on for a durable figure.
func BenchmarkIntakeFloor4Senders(b *testing.B) {
	f := setup(b)
	const size, senders = 500, 4
	sendAll(b, f, storeOnly(b, f), intakeBodies(b, f, size), size, senders, false)
}

// storeOnly is an intake handler that stores each alert and nothing else.
func storeOnly(b *testing.B, f *fixture) http.Handler {
	s := f.svc
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r, s.cfg.MaxBodyBytes)
		if err != nil {
			b.Error(err)
			return
		}
		items, _, err := SplitPayload(body)
		if err != nil {
			b.Error(err)
			return
		}
		res := &IngestResult{Items: make([]ItemResult, len(items))}
		ws := make([]*work, len(items))
		for i, n := range s.normalizeAll(items) {
			if n.err != nil {
				b.Errorf("item %d: %v", i, n.err)
				return
			}
			res.Items[i] = ItemResult{Index: i, ID: n.a.ID, Source: n.src, Org: n.a.Org, Tenant: n.a.Tenant, Status: StatusAccepted}
			ws[i] = &work{a: n.a, hash: alertHash(n.a), res: &res.Items[i]}
		}
		now := f.clock.Now()
		err = pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error {
			return copyNewAlerts(r.Context(), tx, "contoso", now, ws)
		})
		if err != nil {
			b.Error(err)
			return
		}
		res.Accepted = len(items)
		writeJSON(w, http.StatusOK, res)
	})
}
