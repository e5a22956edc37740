package testenv

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Tmpfs is a small filesystem a test mounted, to run something out of space.
type Tmpfs struct {
	t   testing.TB
	Dir string
}

// MountTmpfs mounts a tmpfs of size bytes on dir (created if missing) and
// unmounts it at the end of the test. It needs root (CI runs tests as root)
// and fails the test, never skips, without it.
func MountTmpfs(t testing.TB, dir string, size int64) *Tmpfs {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("tmpfs: %v", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("tmpfs: mount on %s (tests that fill a disk run as root): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("tmpfs: unmount %s: %v", dir, err)
		}
	})
	return &Tmpfs{t: t, Dir: dir}
}

// Resize changes the size of the filesystem (a remount: its files stay), as
// an operator who frees or adds space would.
func (f *Tmpfs) Resize(size int64) {
	f.t.Helper()
	if err := unix.Mount("tmpfs", f.Dir, "tmpfs", unix.MS_REMOUNT, fmt.Sprintf("size=%d", size)); err != nil {
		f.t.Fatalf("tmpfs: remount %s: %v", f.Dir, err)
	}
}

// Free is the space left on the filesystem, in bytes.
func (f *Tmpfs) Free() int64 {
	f.t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(f.Dir, &st); err != nil {
		f.t.Fatalf("tmpfs: statfs %s: %v", f.Dir, err)
	}
	return int64(st.Bavail) * st.Bsize
}
