package casework

import "fmt"

// Configuration changes without a restart (issue 18): a reload switches the
// orgs (which exist, their credits per quarter) and the SLA targets of new
// cases at once; the rest of Config is read at start and keeps its value
// until a restart. Cases opened before a reload keep the targets they were
// opened with (their due times are stored).

// liveConfig is the running configuration, with the reloadable parts as
// the last SetLive left them.
func (s *Service) liveConfig() *Config { return s.live.Load() }

// LiveChanges are the parts of cfg SetLive applies.
func LiveChanges(cfg Config) Config {
	cfg = cfg.WithDefaults()
	return Config{Orgs: cfg.Orgs, SLA: cfg.SLA, CreditsPerQuarter: cfg.CreditsPerQuarter}
}

// CheckLive reports what is wrong with next's reloadable parts on top of
// the running configuration (nil: SetLive would take them).
func (s *Service) CheckLive(next Config) error {
	_, err := s.prepareLive(next)
	return err
}

// SetLive switches the orgs, their credits and the SLA targets of new
// cases to next's; a bad next changes nothing.
func (s *Service) SetLive(next Config) error {
	n, err := s.prepareLive(next)
	if err != nil {
		return err
	}
	s.live.Store(n)
	return nil
}

func (s *Service) prepareLive(next Config) (*Config, error) {
	n := *s.live.Load()
	l := LiveChanges(next)
	n.Orgs, n.SLA, n.CreditsPerQuarter = l.Orgs, l.SLA, l.CreditsPerQuarter
	n.SLA.CheckInterval = s.cfg.SLA.CheckInterval // the sweep's schedule is set at start
	if err := n.Validate(); err != nil {
		return nil, fmt.Errorf("cases config: %w", err)
	}
	return &n, nil
}
