package dict

import (
	"embed"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// samples are the sample.txt of each dictionary: the legacy manual's
// examples where it prints one (tabs restored), ours otherwise.
//
//go:embed samples
var samples embed.FS

// Sample returns the sample.txt of dictionary name.
func Sample(name string) ([]byte, error) {
	return samples.ReadFile("samples/" + name + "/" + SampleFile)
}

// WriteSamples creates <dir>/<name>/sample.txt for every dictionary where it
// is missing, so an operator finds the pattern where the legacy collector
// kept it. Samples are never loaded; existing files are left alone.
func WriteSamples(dir string) error {
	for _, s := range Specs {
		b, err := Sample(s.Name)
		if err != nil {
			return err
		}
		d := filepath.Join(dir, s.Name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(d, SampleFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		_, err = f.Write(b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
