package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
