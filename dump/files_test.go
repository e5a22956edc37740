package dump_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/dump"
)

func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := dump.LockDir(dir)
	require.NoError(t, err)
	_, err = dump.LockDir(dir)
	require.ErrorContains(t, err, "another ipfix-loader")
	unlock()
	unlock2, err := dump.LockDir(dir)
	require.NoError(t, err)
	unlock2()
}

func TestQuarantineAndRetire(t *testing.T) {
	sd := dump.StreamDir(t.TempDir(), "fullflow")
	require.NoError(t, os.MkdirAll(sd, 0o755))
	put := func(name string) string {
		p := filepath.Join(sd, name)
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o644))
		return p
	}
	bad := put("a.ipfix")
	require.NoError(t, dump.Quarantine(bad, "why\n"))
	assert.FileExists(t, filepath.Join(sd, dump.BadDir, "a.ipfix"))
	why, err := os.ReadFile(filepath.Join(sd, dump.BadDir, "a.ipfix.why"))
	require.NoError(t, err)
	assert.Equal(t, "why\n", string(why))

	moved := put("b.ipfix")
	require.NoError(t, dump.Retire(moved, false))
	assert.FileExists(t, filepath.Join(sd, dump.LoadedDir, "b.ipfix"))
	assert.NoFileExists(t, moved)
	gone := put("c.ipfix")
	require.NoError(t, dump.Retire(gone, true))
	assert.NoFileExists(t, gone)
	assert.NoFileExists(t, filepath.Join(sd, dump.LoadedDir, "c.ipfix"))
	require.NoError(t, dump.Retire(gone, true), "already gone is no error")
}
