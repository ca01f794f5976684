package walflush_test

import (
	"context"
	"testing"

	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/internal/walflush"
)

// TestFlushReachesPastAnAsynchronousCommit: a transaction that commits
// without waiting for the disk is on disk once Flush returns.
func TestFlushReachesPastAnAsynchronousCommit(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	lsn := pgtest.AsyncCommit(t, pool)
	if err := walflush.Flush(context.Background(), pool); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if !pgtest.Flushed(t, pool, lsn) {
		t.Fatal("the WAL is not flushed past the asynchronous commit")
	}
}
