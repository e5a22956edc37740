package loader

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	require.NoError(t, err)
	_, err = lockDir(dir)
	require.ErrorContains(t, err, "another ipfix-loader")
	unlock()
	unlock2, err := lockDir(dir)
	require.NoError(t, err)
	unlock2()
}
