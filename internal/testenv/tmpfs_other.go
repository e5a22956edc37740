//go:build !linux

package testenv

import "testing"

// Tmpfs is a small filesystem a test mounted (Linux only).
type Tmpfs struct{ Dir string }

// MountTmpfs fails the test: mounting a tmpfs needs Linux.
func MountTmpfs(t testing.TB, dir string, size int64) *Tmpfs {
	t.Helper()
	t.Fatal("tmpfs: Linux only")
	return nil
}

// Resize does nothing off Linux.
func (f *Tmpfs) Resize(int64) {}

// Free is 0 off Linux.
func (f *Tmpfs) Free() int64 { return 0 }
