//go:build unix

package dump

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// TryLock takes an exclusive flock on f without waiting. The recorder holds
// it on its .part until the file is renamed, and start-up recovery skips a
// .part it cannot lock: another live process (a restart hand-over) still
// writes it. The kernel releases the lock when the process dies, even by
// SIGKILL.
func TryLock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// LockDir takes the loader's lock of the dump root dir; unlock releases it.
func LockDir(dir string) (unlock func(), err error) {
	p := filepath.Join(dir, LoaderLock)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	if err := TryLock(f); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: another ipfix-loader loads this directory", p)
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}
