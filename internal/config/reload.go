package config

import (
	"errors"
	"os"
)

// ReadFile reads the config file (THREATDESK_CONFIG) again, with the
// environment Load read, fills its defaults and checks it: every problem
// is reported at once, one per line, as Load reports them. The running
// configuration is not touched: the caller switches to the file it returns
// (a reload, SIGHUP or /experts reload).
func (c *Config) ReadFile() (*File, error) {
	if c.ConfigPath == "" {
		return nil, errors.New("THREATDESK_CONFIG is not set: there is no config file to read again")
	}
	f, err := LoadFile(c.ConfigPath)
	if f == nil {
		return nil, err
	}
	lookup := c.lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	f.gather(lookup)
	if err := errors.Join(append(append([]error{err}, f.validate()...), c.Env.checkFile(f)...)...); err != nil {
		return nil, err
	}
	return f, nil
}
