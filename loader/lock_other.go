//go:build !unix

package loader

// lockDir is a no-op where flock is missing.
func lockDir(string) (func(), error) { return func() {}, nil }
