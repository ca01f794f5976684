package hunting

import (
	"fmt"
	"reflect"
)

// Configuration changes without a restart (issue 18): a reload switches the
// orgs (their tenants, which route alerts, their notification thresholds
// and ingest tokens) at once; the rest of Config is read at start.

// liveConfig is the running configuration, with the orgs as the last
// SetOrgs left them.
func (s *Service) liveConfig() *Config { return s.live.Load() }

// CheckOrgs reports what is wrong with next's orgs on top of the running
// configuration (nil: SetOrgs would take them).
func (s *Service) CheckOrgs(next Config) error {
	_, err := s.prepareOrgs(next)
	return err
}

// SetOrgs switches the orgs to next's; a bad next changes nothing.
func (s *Service) SetOrgs(next Config) error {
	n, err := s.prepareOrgs(next)
	if err != nil {
		return err
	}
	s.live.Store(n)
	return nil
}

func (s *Service) prepareOrgs(next Config) (*Config, error) {
	n := *s.live.Load()
	n.Orgs = next.Orgs
	n = n.WithDefaults() // rebuilds the tenant routes
	if err := n.Validate(); err != nil {
		return nil, fmt.Errorf("hunting config: %w", err)
	}
	return &n, nil
}

// SameSettings reports whether a and b differ only in their orgs (what
// SetOrgs applies); secrets are compared, never shown.
func SameSettings(a, b Config) bool {
	if a.IngestToken.Value() != b.IngestToken.Value() {
		return false
	}
	a.Orgs, b.Orgs, a.tenants, b.tenants, a.IngestToken, b.IngestToken, a.Now, b.Now = nil, nil, nil, nil, "", "", nil, nil
	return reflect.DeepEqual(a, b)
}
