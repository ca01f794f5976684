package secrets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KeyFile is the file, in the data directory, that holds a generated key.
const KeyFile = "secret.key"

// LoadOrCreate returns the key kept in dir/KeyFile, generating it first when
// the file does not exist (created reports that). The file holds the key as
// hex and is created with mode 0600 in one step (written aside, then linked
// into place), so two processes starting together agree on one key and none
// ever reads a half-written file. A key file that others may read (any group
// or other permission bit) is refused: tighten it with chmod 600.
func LoadOrCreate(dir string) (k *Key, created bool, err error) {
	path := filepath.Join(dir, KeyFile)
	k, err = load(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create %s for the secret key: %w", dir, err)
	}
	k, err = Generate()
	if err != nil {
		return nil, false, err
	}
	tmp, err := os.CreateTemp(dir, "."+KeyFile+".*")
	if err != nil {
		return nil, false, fmt.Errorf("write the secret key into %s: %w", dir, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return nil, false, fmt.Errorf("write the secret key into %s: %w", dir, err)
	}
	if _, err := tmp.WriteString(k.Encode() + "\n"); err != nil {
		_ = tmp.Close()
		return nil, false, fmt.Errorf("write the secret key into %s: %w", dir, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return nil, false, fmt.Errorf("write the secret key into %s: %w", dir, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("write the secret key into %s: %w", dir, err)
	}
	// Link fails if another process linked its key first: then use that one.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			k, err = load(path)
			return k, false, err
		}
		return nil, false, fmt.Errorf("write the secret key to %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable
		_ = d.Close()
	}
	return k, true, nil
}

func load(path string) (*Key, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read the secret key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("the secret key file %s has mode %04o, which lets others read it: run chmod 600 %s", path, info.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the secret key: %w", err)
	}
	defer clear(b)
	k, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("the secret key file %s: %w", path, err)
	}
	return k, nil
}
