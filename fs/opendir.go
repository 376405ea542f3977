package fs

import (
	"sync/atomic"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// handlelessDirs makes directory opens zero-message, as files' opens are:
// its first OPENDIR answers ENOSYS, after which the kernel sends no OPENDIR
// or RELEASEDIR again and opens every directory with FOPEN_KEEP_CACHE |
// FOPEN_CACHE_DIR (Linux 5.1's no_opendir), so a listing it holds costs no
// round trip at all; a listing it does not hold is one READDIR with no
// directory handle (Fh 0), which handlelessDirs serves by opening,
// reading and releasing a handle of go-fuse's own, in process. go-fuse
// alone cannot: its READDIR needs the handle of an OPENDIR, and with Fh 0 it
// lists nothing. Listings change only through escfs's invalidations (see
// invalidate), which drop the kernel's cached listing as before.
//
// Only without allow_other: with it, every OPENDIR must reach the daemon
// and check the caller, and nothing may be cached.
type handlelessDirs struct {
	fuse.RawFileSystem
	server atomic.Pointer[fuse.Server]

	opendirs, readdirs atomic.Int64 // requests from the kernel, for tests
}

// Init notes the server, whose INIT says what the kernel supports.
func (h *handlelessDirs) Init(s *fuse.Server) {
	h.server.Store(s)
	h.RawFileSystem.Init(s)
}

// supported reports whether the kernel makes opendir zero-message when
// OPENDIR answers ENOSYS (FUSE_NO_OPENDIR_SUPPORT); an older one would fail
// the opendir.
func (h *handlelessDirs) supported() bool {
	s := h.server.Load()
	return s != nil && s.KernelSettings().Flags&fuse.CAP_NO_OPENDIR_SUPPORT != 0
}

func (h *handlelessDirs) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	h.opendirs.Add(1)
	if h.supported() {
		return fuse.ENOSYS
	}
	return h.RawFileSystem.OpenDir(cancel, in, out)
}

// ReadDir serves a READDIR without a handle (Fh 0, after the kernel stopped
// sending OPENDIR) with a handle of its own for this one request: a listing
// longer than one reply is read in several READDIRs, each at its offset, and
// each handle seeks there (dirHandle.Seekdir).
func (h *handlelessDirs) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	h.readdirs.Add(1)
	if in.Fh != 0 { // go-fuse's handles start at 1
		return h.RawFileSystem.ReadDir(cancel, in, out)
	}
	var opened fuse.OpenOut
	if st := h.RawFileSystem.OpenDir(cancel, &fuse.OpenIn{InHeader: in.InHeader}, &opened); st != fuse.OK {
		return st
	}
	defer h.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: in.InHeader, Fh: opened.Fh})
	withHandle := *in
	withHandle.Fh = opened.Fh
	return h.RawFileSystem.ReadDir(cancel, &withHandle, out)
}
