package dict

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An edit that keeps the size and the modification time (a coarse file
// system clock) is still seen, at the next periodic rehash.
func TestWatcherRehashesUnchangedLookingFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, VChannelName, "v.txt")
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte("10\tAAAA\n"), 0o644))
	stamp := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, os.Chtimes(path, stamp, stamp))
	w, err := New(Config{Dir: dir}, nil)
	require.NoError(t, err)
	require.NoError(t, w.Load(context.Background()))

	require.NoError(t, os.WriteFile(path, []byte("10\tBBBB\n"), 0o644)) // same size
	require.NoError(t, os.Chtimes(path, stamp, stamp))                  // same time
	require.NoError(t, w.Load(context.Background()))
	n, _ := w.Current().VChannelNames().VChannelName(10)
	assert.Equal(t, "AAAA", n, "within rehashEvery the files look unchanged")

	old := rehashEvery
	rehashEvery = 0
	t.Cleanup(func() { rehashEvery = old })
	require.NoError(t, w.Load(context.Background()))
	n, _ = w.Current().VChannelNames().VChannelName(10)
	assert.Equal(t, "BBBB", n, "the periodic rehash sees the edit")
}
