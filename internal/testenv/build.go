package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build compiles the command at pkg (a package path relative to the calling
// test's directory, e.g. "." or "../cmd/ipfix-loader") into a temporary
// directory, for tests that run the real binary as a child process. It is meant
// for TestMain, which has no testing.TB: call cleanup after m.Run.
func Build(name, pkg string, flags ...string) (path string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", name+"-test-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	path = filepath.Join(dir, name)
	args := append(append([]string{"build"}, flags...), "-o", path, pkg)
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go %v: %w\n%s", args, err, out)
	}
	return path, cleanup, nil
}

// RunWithBinary is the whole TestMain of a package whose tests run a real
// binary: it builds the command at pkg (with flags, or without them if that
// fails, e.g. -race without cgo), stores its path in *path, runs the tests and
// removes the binary. It returns the exit code for os.Exit.
func RunWithBinary(m *testing.M, path *string, name, pkg string, flags ...string) int {
	p, cleanup, err := Build(name, pkg, flags...)
	if err != nil && len(flags) > 0 {
		p, cleanup, err = Build(name, pkg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*path = p
	return m.Run()
}
