package lifecycle_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/threatdesk/threatdesk/internal/lifecycle"
)

// journal records starts and stops, in order.
type journal struct {
	mu  sync.Mutex
	log []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.log = append(j.log, s)
}

func (j *journal) entries() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.log...)
}

type fakeService struct {
	name     string
	j        *journal
	startErr error
	stopErr  error
}

func (s *fakeService) Start(context.Context) error {
	s.j.add("start " + s.name)
	return s.startErr
}

func (s *fakeService) Stop() error {
	s.j.add("stop " + s.name)
	return s.stopErr
}

func TestListStartsInOrderAndStopsInReverse(t *testing.T) {
	t.Parallel()
	j := &journal{}
	l := lifecycle.NewList(nil)
	for _, n := range []string{"casework", "hunting", "bot", "slack"} {
		l.Add(n, &fakeService{name: n, j: j})
	}
	require.Equal(t, []string{"casework", "hunting", "bot", "slack"}, l.Names())
	require.NoError(t, l.Start(t.Context()))
	require.ErrorIs(t, l.Start(t.Context()), lifecycle.ErrStarted)
	require.NoError(t, l.Stop())
	require.NoError(t, l.Stop(), "Stop is idempotent")
	require.Equal(t, []string{
		"start casework", "start hunting", "start bot", "start slack",
		"stop slack", "stop bot", "stop hunting", "stop casework",
	}, j.entries())
}

func TestListStopsWhatStartedWhenOneFails(t *testing.T) {
	t.Parallel()
	j := &journal{}
	l := lifecycle.NewList(nil)
	refused := errors.New("token refused")
	l.Add("casework", &fakeService{name: "casework", j: j})
	l.Add("bot", &fakeService{name: "bot", j: j})
	l.Add("slack", &fakeService{name: "slack", j: j, startErr: refused})
	l.Add("discord", &fakeService{name: "discord", j: j})
	err := l.Start(t.Context())
	require.ErrorIs(t, err, refused)
	require.EqualError(t, err, "start slack: token refused")
	require.Equal(t, []string{"start casework", "start bot", "start slack", "stop bot", "stop casework"}, j.entries())
	require.NoError(t, l.Stop(), "nothing is left to stop")
	require.Len(t, j.entries(), 5)
}

func TestListStopReportsEveryFailure(t *testing.T) {
	t.Parallel()
	j := &journal{}
	l := lifecycle.NewList(nil)
	l.Add("casework", &fakeService{name: "casework", j: j, stopErr: errors.New("scheduler timed out")})
	l.Add("bot", &fakeService{name: "bot", j: j})
	l.Add("slack", &fakeService{name: "slack", j: j, stopErr: errors.New("panic in socket mode")})
	require.NoError(t, l.Start(t.Context()))
	err := l.Stop()
	require.ErrorContains(t, err, "stop slack: panic in socket mode")
	require.ErrorContains(t, err, "stop casework: scheduler timed out")
	require.Equal(t, []string{"start casework", "start bot", "start slack", "stop slack", "stop bot", "stop casework"}, j.entries(),
		"a failing Stop does not keep the others from stopping")
	require.Equal(t, err, l.Stop(), "every Stop returns the same")
}

func TestListStopBeforeStart(t *testing.T) {
	t.Parallel()
	j := &journal{}
	l := lifecycle.NewList(nil)
	l.Add("bot", &fakeService{name: "bot", j: j})
	require.NoError(t, l.Stop())
	require.ErrorIs(t, l.Start(t.Context()), lifecycle.ErrStopped)
	require.Empty(t, j.entries())
}
