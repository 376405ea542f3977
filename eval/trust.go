package eval

import (
	"fmt"
	"os"
	"syscall"
)

// Reader is the user escfs serves the environments to. A definition file
// (after symlinks are resolved) is read only if that user could have
// written it themselves or trusts its owner: it must be owned by the user
// or root, not writable by others, and readable by the user. Otherwise a
// root escfs serving user 1000 would read whatever file 1000 links a
// definition to (defs/x.yaml -> /etc/shadow) and quote it in diagnostics
// that 1000 can read. This is ssh's StrictModes for definitions.
type Reader struct {
	UID, GID uint32
}

// currentReader is the process's own user, the default Reader.
func currentReader() Reader {
	return Reader{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
}

// untrusted returns why the file behind fi may not be read for r, or "".
// The reason quotes nothing of the file.
func (r Reader) untrusted(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	mode := fi.Mode().Perm()
	switch {
	case st.Uid != r.UID && st.Uid != 0:
		return fmt.Sprintf("refused: the file is owned by uid %d, neither the served user (uid %d) nor root", st.Uid, r.UID)
	case mode&0o002 != 0:
		return fmt.Sprintf("refused: the file is writable by every user (mode %04o); chmod o-w it", mode)
	case !r.canRead(st.Uid, st.Gid, mode):
		return fmt.Sprintf("refused: the served user (uid %d) may not read the file itself (mode %04o, owner uid %d)", r.UID, mode, st.Uid)
	}
	return ""
}

// canRead reports whether r may read a file of that owner, group and mode,
// from the mode bits (supplementary groups are not consulted: a file only a
// supplementary group may read is refused).
func (r Reader) canRead(uid, gid uint32, mode os.FileMode) bool {
	switch {
	case r.UID == 0:
		return true
	case uid == r.UID:
		return mode&0o400 != 0
	case gid == r.GID:
		return mode&0o040 != 0
	default:
		return mode&0o004 != 0
	}
}
