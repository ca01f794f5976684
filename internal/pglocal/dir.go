package pglocal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// SecureDir makes path a directory that belongs to uid and that no one else
// can use. A missing directory is created. An existing one must be a real
// directory (a symbolic link is refused, never followed) owned by uid; when
// the process is root, a directory owned by root is also accepted and given
// to uid (an administrator made it). Its mode is then set to perm; tightened
// reports whether it allowed more than perm before.
//
// The checks and changes are made on an open descriptor (O_NOFOLLOW), so a
// link planted between the check and the change is never followed.
func SecureDir(path string, uid, gid int, perm fs.FileMode) (tightened bool, err error) {
	if err := os.Mkdir(path, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return false, fmt.Errorf("create directory %q: %w", path, err)
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.ENOTDIR) {
			return false, fmt.Errorf("%q is a symbolic link or not a directory: it must be a directory of its own (remove it and let threatdesk create it)", path)
		}
		return false, fmt.Errorf("open directory %q: %w", path, err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return false, fmt.Errorf("inspect directory %q: %w", path, err)
	}
	switch {
	case int(st.Uid) == uid:
	case st.Uid == 0 && os.Geteuid() == 0:
		if err := syscall.Fchown(fd, uid, gid); err != nil {
			return false, fmt.Errorf("give directory %q to %s: %w", path, userName(uid), err)
		}
	default:
		return false, fmt.Errorf("directory %q belongs to %s, not to %s: someone else made it, so it cannot be trusted; remove it (or give it to %s with mode %o) and start again",
			path, userName(int(st.Uid)), userName(uid), userName(uid), perm)
	}
	mode := fs.FileMode(st.Mode) & fs.ModePerm
	if mode != perm {
		if err := syscall.Fchmod(fd, uint32(perm)); err != nil {
			return false, fmt.Errorf("set the mode of directory %q to %o: %w", path, perm, err)
		}
	}
	return mode&^perm != 0, nil
}

// checkOwned fails when path exists and is a symbolic link or does not
// belong to uid.
func checkOwned(path string, uid int) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %q: %w", path, err)
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%q is a symbolic link: the cluster must live in a directory of its own", path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != uid {
		return fmt.Errorf("%q belongs to %s, not to %s, the user the server runs as: it cannot be trusted", path, userName(int(sys.Uid)), userName(uid))
	}
	return nil
}

// checkAncestors fails when a directory above dir can be written by every
// user without the sticky bit (anyone could then swap dir for their own), or,
// when the server runs as another user, cannot be entered by that user.
func checkAncestors(dir string, otherUser string) error {
	parent, err := filepath.EvalSymlinks(filepath.Dir(dir))
	if err != nil {
		return fmt.Errorf("resolve %q: %w", filepath.Dir(dir), err)
	}
	for p := parent; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("check %q: %w", p, err)
		}
		perm := st.Mode()
		if perm&0o002 != 0 && perm&fs.ModeSticky == 0 {
			return fmt.Errorf("%q is inside %q, which every user may write to (mode %v) without the sticky bit, so anyone could replace it: choose a directory whose parents only their owners can change",
				dir, p, perm.Perm())
		}
		if otherUser != "" && perm.Perm()&0o001 == 0 {
			return fmt.Errorf("%q is inside %q, which user %s cannot enter (mode %v): allow it (chmod o+x) or choose a THREATDESK_DATA_DIR whose parents every user can enter, for example /var/lib/threatdesk",
				dir, p, otherUser, perm.Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// writePrivateFile replaces path with data, mode 0600, owned by uid:gid. It
// writes a new file beside it and renames it over, so a reader sees the old
// or the new content, and a link planted at the temporary name is refused.
func writePrivateFile(path string, data []byte, uid, gid int) error {
	tmp := path + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %q: %w", tmp, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("create %q: %w", tmp, err)
	}
	_, err = f.Write(data)
	if err == nil && (uid != os.Geteuid() || gid != os.Getegid()) {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %q: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("replace %q: %w", path, err)
	}
	return nil
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}
