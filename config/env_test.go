package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/legacy/*/want.{toml,err}")

// TestLegacyGolden converts each testdata/legacy/<case>/in.env and compares
// the TOML (with the warnings in its header) to want.toml, or the error to
// want.err. Regenerate on purpose with go test ./config -run TestLegacyGolden
// -update and review the diff.
func TestLegacyGolden(t *testing.T) {
	captureLog(t) // Load logs the warnings that ConvertEnv returns
	dirs, err := filepath.Glob("testdata/legacy/*")
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(dir, "in.env"))
			require.NoError(t, err)
			got, warnings, err := ConvertEnv(in, "in.env")
			wantFile, gotText := filepath.Join(dir, "want.toml"), string(got)
			if err != nil {
				require.Nil(t, got)
				wantFile, gotText = filepath.Join(dir, "want.err"), err.Error()+"\n"
			}
			if *update {
				for _, f := range []string{"want.toml", "want.err"} {
					_ = os.Remove(filepath.Join(dir, f))
				}
				require.NoError(t, os.WriteFile(wantFile, []byte(gotText), 0o644))
			}
			want, err := os.ReadFile(wantFile)
			require.NoError(t, err, "no %s: run with -update and review", filepath.Base(wantFile))
			assert.Equal(t, string(want), gotText, "(-got, +want) of %s", wantFile)
			if strings.HasSuffix(wantFile, ".err") {
				return
			}

			// The TOML loads to the same Config, and Load recognises the .env.
			fromEnv, w2, err := ParseEnv(in, "in.env")
			require.NoError(t, err)
			assert.Equal(t, warnings, w2)
			fromTOML, err := Parse(got, "want.toml")
			require.NoError(t, err)
			assert.Equal(t, fromEnv, fromTOML)
			loaded, err := Load(filepath.Join(dir, "in.env"))
			require.NoError(t, err)
			assert.Equal(t, fromEnv, loaded)
		})
	}
}

func TestParseEnvBalancerExample(t *testing.T) {
	in, err := os.ReadFile("testdata/legacy/balancer-example/in.env")
	require.NoError(t, err)
	cfg, warnings, err := ParseEnv(in, "in.env")
	require.NoError(t, err)
	assert.Empty(t, warnings)
	require.Len(t, cfg.Receivers, 3)
	r := cfg.Receivers[0]
	assert.Equal(t, "fullflow/0", r.Name())
	assert.Equal(t, "0.0.0.0:1500", r.Listen.String())
	assert.Equal(t, RoundRobin, r.Mode)
	assert.Equal(t, []Subreceiver{
		{Addr: "10.19.3.21:1500", Proto: TCP},
		{Addr: "10.19.3.23:1600", Proto: TCP},
		{Addr: "10.19.3.24:1600", Proto: TCP},
	}, r.Subreceivers)
	assert.Equal(t, "61", r.CPU.String())
	assert.Equal(t, "clickstream/0", cfg.Receivers[1].Name())
	assert.Equal(t, 12*60e9, float64(cfg.Receivers[1].Recording.RotateEvery))
	assert.Equal(t, "dnsflow/0", cfg.Receivers[2].Name())
	assert.Equal(t, "63", cfg.Receivers[2].CPU.String())
	assert.Equal(t, LegacyDumpDir, cfg.Loader.Dir)
}

func TestEnvUnquote(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got, err := envUnquote(in)
		require.NoError(t, err, "envUnquote(%q)", in)
		assert.Equal(t, want, got, "envUnquote(%q)", in)
	}
	f("", "")
	f("tcp", "tcp")
	f("  tcp  ", "tcp")
	f("tcp # comment", "tcp")
	f("tcp\t# comment", "tcp")
	f("a#b", "a#b") // '#' inside a word is not a comment
	f("#comment", "")
	f(`"tcp"`, "tcp")
	f(`"a # b" # c`, "a # b")
	f(`'a "b"'`, `a "b"`)
	f(`"a \"b\" \\ \$"`, `a "b" \ $`)
	f(`"a\nb"`, `a\nb`) // no escapes but those of the shell
	f(`''`, "")

	fe := func(in, wantErr string) {
		t.Helper()
		_, err := envUnquote(in)
		assert.EqualError(t, err, wantErr, "envUnquote(%q)", in)
	}
	fe(`"tcp`, `no closing "`)
	fe(`'tcp`, `no closing '`)
	fe(`"tcp"x`, `text after the closing ": "x"`)
	fe(`"tcp" x`, `text after the closing ": "x"`)
}

func TestLooksLikeEnv(t *testing.T) {
	assert.True(t, looksLikeEnv([]byte("# c\nIPFIX_FULLFLOW_PORT[0]=1500\n")))
	assert.True(t, looksLikeEnv([]byte("TRAFFIC_DIR_DEF_MODE=0\nexport IPFIX_FULLFLOW_PORT=1500\n")))
	assert.False(t, looksLikeEnv(DefaultTOML))
	assert.False(t, looksLikeEnv([]byte("[metrics]\nlisten = \"IPFIX_X=1\"\n")))
}
