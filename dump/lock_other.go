//go:build !unix

package dump

import "os"

// TryLock does nothing where flock is missing: recovery then assumes no
// other process writes the dump directory.
func TryLock(*os.File) error { return nil }

// LockDir does nothing where flock is missing.
func LockDir(string) (func(), error) { return func() {}, nil }
