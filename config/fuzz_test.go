package config

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzLoadConfig feeds arbitrary bytes to Parse and ParseEnv. Neither may
// panic, and whatever they accept must validate and survive TOML → Parse
// unchanged.
func FuzzLoadConfig(f *testing.F) {
	f.Add(DefaultTOML)
	for _, pattern := range []string{"testdata/legacy/*/in.env", "testdata/legacy/*/want.toml"} {
		files, err := filepath.Glob(pattern)
		require.NoError(f, err)
		for _, file := range files {
			b, err := os.ReadFile(file)
			require.NoError(f, err)
			f.Add(b)
		}
	}
	// Every receiver key, cpu as a list, subreceivers in all three forms.
	f.Add([]byte(`[[receiver]]
stream = "clickstream"
dpi = 3
listen = "[::1]:4739"
proto = "udp"
mode = "All"
subreceivers = ["10.0.0.1:1", "h.example/2", "::1/3/udp"]
cpu = "0-3,8"
mtu = 9000
template_lifetime = "1h30m"
recording = { dir = "d", rotate_every = "1s", export = ["10.0.0.2/9920/"] }
`))
	// Unknown keys inside arrays of tables, inline tables and dotted keys.
	f.Add([]byte("[[receiver]]\nstream = \"fullflow\"\nx.y = 1\n[receiver.recording]\nz = { a = 1 }\n"))
	// Multi-line strings and arrays that hold text looking like headers and keys.
	f.Add([]byte("[loader]\npassword = '''\n[[receiver]]\nx = 1'''\ncluster = [\n\"a\", # ]\n]\n"))
	// Legacy lines: quotes, export, comments, no index, collector settings.
	f.Add([]byte("export IPFIX_FULLFLOW_PORT=\"1500\" # c\nIPFIX_X_PORT[2]='1600'\nNAT_AGG_X\nULR_Y=1\n"))

	// Zones and a proto other than subreceiver_proto print in the legacy form.
	f.Add([]byte("[[receiver]]\nstream = \"fullflow\"\nlisten = \"[fe80::1%eth0]:0\"\nsubreceivers = [\"[fe80::2%eth0]:1\", \"h/2/udp\"]\n"))

	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if cfg, err := Parse(data, "fuzz.toml"); err == nil {
			checkAccepted(t, cfg)
		} else {
			assert.NotEmpty(t, err.Error())
		}
		if cfg, _, err := ParseEnv(data, "fuzz.env"); err == nil {
			checkAccepted(t, cfg)
		}
	})
}

func checkAccepted(t *testing.T, cfg *Config) {
	t.Helper()
	require.NoError(t, cfg.Validate())
	out, err := cfg.TOML()
	require.NoError(t, err)
	back, err := Parse(out, "printed.toml")
	require.NoError(t, err, "printed:\n%s", out)
	require.Equal(t, cfg, back, "printed:\n%s", out)
}
