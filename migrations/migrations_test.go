package migrations_test

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/pgtest"
	"github.com/threatdesk/threatdesk/migrations"
)

func TestLoadSequence(t *testing.T) {
	t.Parallel()
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr string
	}{
		{name: "ok", files: fstest.MapFS{"0001_a.sql": sql, "0002_b.sql": sql}},
		{name: "gap", files: fstest.MapFS{"0001_a.sql": sql, "0003_c.sql": sql}, wantErr: "breaks the sequence: expected version 0002"},
		{name: "duplicate", files: fstest.MapFS{"0001_a.sql": sql, "0002_b.sql": sql, "0002_x.sql": sql}, wantErr: "used twice"},
		{name: "wrong start", files: fstest.MapFS{"0002_b.sql": sql}, wantErr: "expected version 0001"},
		{name: "bad name", files: fstest.MapFS{"0001_a.sql": sql, "2_b.sql": sql}, wantErr: "not named NNNN_name.sql"},
		{name: "empty", files: fstest.MapFS{}, wantErr: "no migrations found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			list, err := migrations.Load(tc.files)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Len(t, list, 2)
			require.Equal(t, 1, list[0].Version)
			require.Equal(t, "b", list[1].Name)
		})
	}
}

func TestEmbeddedSequenceIsStrict(t *testing.T) {
	t.Parallel()
	all, err := migrations.All()
	require.NoError(t, err)
	for i, m := range all {
		require.Equal(t, i+1, m.Version)
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.Empty(t)

	n, err := migrations.Pending(ctx, pool)
	require.NoError(t, err)
	all, err := migrations.All()
	require.NoError(t, err)
	require.Equal(t, len(all), n)

	applied, err := migrations.Apply(ctx, pool, nil)
	require.NoError(t, err)
	require.Equal(t, len(all), applied)

	applied, err = migrations.Apply(ctx, pool, nil)
	require.NoError(t, err)
	require.Zero(t, applied, "a second run applies nothing")

	n, err = migrations.Pending(ctx, pool)
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestConcurrentRunnersAllSucceed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.Empty(t)
	all, err := migrations.All()
	require.NoError(t, err)

	const runners = 6
	var wg sync.WaitGroup
	counts := make([]int, runners)
	errs := make([]error, runners)
	for i := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i], errs[i] = migrations.Apply(ctx, pool, nil)
		}()
	}
	wg.Wait()
	total := 0
	for i := range runners {
		require.NoError(t, errs[i])
		total += counts[i]
	}
	require.Equal(t, len(all), total, "each migration applied exactly once across runners")
	var rows int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&rows))
	require.Equal(t, len(all), rows)
}

func TestChangedMigrationIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.Empty(t)
	first := fstest.MapFS{"0001_a.sql": {Data: []byte("CREATE TABLE a (id int);")}}
	list, err := migrations.Load(first)
	require.NoError(t, err)
	_, err = migrations.ApplyList(ctx, pool, list, nil)
	require.NoError(t, err)

	changed := fstest.MapFS{"0001_a.sql": {Data: []byte("CREATE TABLE a (id bigint);")}}
	list, err = migrations.Load(changed)
	require.NoError(t, err)
	_, err = migrations.ApplyList(ctx, pool, list, nil)
	require.ErrorContains(t, err, "was changed after it was applied")
}

func TestFailedMigrationRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := pgtest.Empty(t)
	list, err := migrations.Load(fstest.MapFS{
		"0001_a.sql": {Data: []byte("CREATE TABLE a (id int);")},
		"0002_b.sql": {Data: []byte("CREATE TABLE b (id int); SELECT no_such_function();")},
	})
	require.NoError(t, err)
	applied, err := migrations.ApplyList(ctx, pool, list, nil)
	require.ErrorContains(t, err, "apply migration 0002_b")
	require.Equal(t, 1, applied)
	var b bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass('b') IS NOT NULL").Scan(&b))
	require.False(t, b, "the failed file left nothing behind")
}
