package dump

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Quarantine moves a dump the loader could not load to BadDir next to it,
// with a sidecar <name>.why saying why (written first, so a crash leaves at
// worst a sidecar without a dump).
func Quarantine(path, why string) error {
	dir := filepath.Join(filepath.Dir(path), BadDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(dir, filepath.Base(path))
	if err := writeFileAtomic(dst+".why", []byte(why)); err != nil {
		return err
	}
	if err := os.Rename(path, dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Retire moves a loaded dump to LoadedDir next to it, or deletes it when
// remove is set (after_load = "delete").
func Retire(path string, remove bool) error {
	if remove {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	dir := filepath.Join(filepath.Dir(path), LoadedDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Rename(path, filepath.Join(dir, filepath.Base(path))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// writeFileAtomic writes data to path through a temporary name.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoaderLock is the file in the dump root that ipfix-loader holds locked
// while it runs (where flock exists): two loaders of one directory would load
// a dump twice.
const LoaderLock = ".ipfix-loader.lock"
