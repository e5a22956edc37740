//go:build unix

package forward

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxIovecs is the kernel's IOV_MAX: writev fails with EINVAL past it (and gnet
// closes the connection when its own Writev hits that), so batches are cut here.
const MaxIovecs = 1024

// IOVWriter writes batches of buffers to a non-blocking socket with one writev per
// 1024 buffers, reusing one iovec array: unix.Writev allocates one per call.
type IOVWriter struct {
	iov []unix.Iovec
}

// Write writes bufs until the socket would block. It returns the number of bytes
// written; a short count with a nil error means EAGAIN (the caller queues the rest).
func (w *IOVWriter) Write(fd int, bufs [][]byte) (int, error) {
	total := 0
	for len(bufs) > 0 {
		chunk := bufs
		if len(chunk) > MaxIovecs {
			chunk = chunk[:MaxIovecs]
		}
		w.iov = w.iov[:0]
		want := 0
		for _, b := range chunk {
			if len(b) == 0 {
				continue
			}
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			w.iov = append(w.iov, v)
			want += len(b)
		}
		if len(w.iov) == 0 {
			bufs = bufs[len(chunk):]
			continue
		}
		// A raw syscall, not announced to the Go runtime, as are the other
		// hot-path calls on non-blocking sockets (write, recvmmsg, sendmmsg).
		// An announced one that lasts (a 1 MiB writev, 256 datagrams) lets
		// sysmon take the loop's P away and keeps sysmon waking every 20 µs:
		// context switches, dear in a VM (UDP drain +12-19 % in bench/). A raw
		// one that never blocks only delays a GC pause by its own length.
		n, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&w.iov[0])), uintptr(len(w.iov)))
		clear(w.iov) // drop references so the GC does not keep old buffers alive
		if errno != 0 {
			if errno == unix.EAGAIN || errno == unix.EINTR {
				return total, nil
			}
			return total, errno
		}
		total += int(n)
		if int(n) < want {
			return total, nil
		}
		bufs = bufs[len(chunk):]
	}
	return total, nil
}

// AppendRun appends b to bufs, or extends the last buffer over b when b starts
// where it ends in memory: consecutive messages of one read, numbered in place,
// then make one iovec, and a writev costs the kernel per iovec as well as per byte.
// The bytes written are the same either way.
func AppendRun(bufs [][]byte, b []byte) [][]byte {
	if n := len(bufs); n > 0 && len(b) > 0 {
		last := bufs[n-1]
		if l := len(last); l+len(b) <= cap(last) && &last[:l+1][l] == &b[0] {
			bufs[n-1] = last[:l+len(b)]
			return bufs
		}
	}
	return append(bufs, b)
}

// SkipBytes returns bufs without its first n bytes (slicing the buffer it ends in).
func SkipBytes(bufs [][]byte, n int) [][]byte {
	for len(bufs) > 0 && n >= len(bufs[0]) {
		n -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 && n > 0 {
		bufs[0] = bufs[0][n:]
	}
	return bufs
}
