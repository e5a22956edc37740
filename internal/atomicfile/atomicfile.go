// Package atomicfile replaces a file so that a crash leaves either the old or
// the new content, never a mix: the console's configuration edits and the
// spool's replay position both depend on it.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Replace writes data to path with mode through a temporary file in the same
// directory, synced, renamed over path, and the directory synced (so the
// rename itself survives a power loss).
func Replace(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename: nothing to remove
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
