package config

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConsoleOperators(t *testing.T) {
	sum := sha256.Sum256([]byte("s3cret"))
	good := "alice:" + hex.EncodeToString(sum[:])
	c := mustParse(t, "[console]\noperators = [\""+good+"\"]\n")
	assert.True(t, c.Console.Enabled, "the console is on by default")
	require.Len(t, c.Console.Operators, 1)
	name, got, err := c.Console.Operator(0)
	require.NoError(t, err)
	assert.Equal(t, "alice", name)
	assert.Equal(t, sum, got)

	f := func(in, want string) {
		t.Helper()
		_, err := Parse([]byte(in), "test.toml")
		require.Error(t, err)
		assert.Contains(t, err.Error(), want)
		assert.NotContains(t, err.Error(), "deadbeef", "a token hash is never printed")
	}
	f("[console]\noperators = [\"alice\"]\n", `console.operators[0]: "…": want name:sha256hex`)
	f("[console]\noperators = [\"alice:deadbeef\"]\n", `console.operators[0]: "alice:…": want name:sha256hex, the token hash as 64 hex digits`)
	f("[console]\noperators = [\""+good+"\", \""+good+"\"]\n", `console.operators[1]: "alice": operator named twice`)
	f("[console]\nenable = true\n", "console.enable")
}
