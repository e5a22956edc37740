package balancer

import "golang.org/x/sys/unix"

// startWriteback asks the kernel to start writing a range of a dump to disk now,
// without waiting for it: dirty pages do not pile up until the fsync at
// rotation, which then stays short. Errors are ignored (a hint only; tmpfs and
// some file systems do nothing).
func startWriteback(fd uintptr, off, n int64) {
	_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
