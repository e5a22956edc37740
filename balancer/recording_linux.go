package balancer

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes an exclusive flock on an open dump without waiting. The writer
// holds it on its .part until the file is renamed, and start-up recovery skips a
// .part it cannot lock: another live process (a restart hand-over) still writes
// it. The kernel releases the lock when the process dies, even by SIGKILL.
func lockFile(f *os.File) error {
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
}

// startWriteback asks the kernel to start writing a range of a dump to disk now,
// without waiting for it: dirty pages do not pile up until the fsync at
// rotation, which then stays short. Errors are ignored (a hint only; tmpfs and
// some file systems do nothing).
func startWriteback(fd uintptr, off, n int64) {
	_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
