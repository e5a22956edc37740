package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
)

// A bad -to says what is wanted (not a raw URL parse error), and a bad
// -stream lists the streams there are.
func TestFlagErrorsSayWhatIsWanted(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.ipfix")
	res := start(t, "-stream", "fullflow", "-records", "1", "-to", "127.0.0.1:1500")()
	assert.Equal(t, 2, res.code)
	assert.Contains(t, res.stderr, `-to "127.0.0.1:1500": want tcp://HOST:PORT or udp://HOST:PORT (a file: -out FILE)`)
	assert.NotContains(t, res.stderr, "first path segment")

	res = start(t, "-stream", "foo", "-records", "1", "-out", out)()
	assert.Equal(t, 2, res.code)
	var names []string
	for _, s := range dpisim.Streams() {
		names = append(names, string(s))
	}
	assert.Contains(t, res.stderr, `-stream: unknown stream "foo" (want `+strings.Join(names, ", ")+`)`)
}

// -h and -help print the usage and exit 0, as the other binaries do.
func TestHelpExitsZero(t *testing.T) {
	for _, arg := range []string{"-h", "-help"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, genBinary, arg).CombinedOutput()
		cancel()
		assert.NoError(t, err, arg)
		assert.Contains(t, string(out), "Usage:", arg)
	}
}
