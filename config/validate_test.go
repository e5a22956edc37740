package config

import (
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
)

// twoReceivers returns a valid Config with fullflow/0 and clickstream/0, to
// be broken by a test.
func twoReceivers(t testing.TB) *Config {
	t.Helper()
	c := Default()
	c.Receivers = c.Receivers[:2]
	require.NoError(t, c.Validate())
	return c
}

func TestValidateHandBuilt(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // nil: valid
	}{{
		name:   "same listen address",
		change: func(c *Config) { c.Receivers[1].Listen = c.Receivers[0].Listen },
		want:   []string{"receiver[clickstream/0].listen: tcp 127.0.0.1:1500: already used by receiver[fullflow/0] (tcp 127.0.0.1:1500)"},
	}, {
		name: "wildcard covers a specific IPv4 address",
		change: func(c *Config) {
			c.Receivers[1].Listen = netip.MustParseAddrPort("0.0.0.0:1500")
		},
		want: []string{"receiver[clickstream/0].listen: tcp 0.0.0.0:1500: already used by receiver[fullflow/0] (tcp 127.0.0.1:1500)"},
	}, {
		name: "dual-stack wildcard covers IPv4",
		change: func(c *Config) {
			c.Receivers[1].Listen = netip.MustParseAddrPort("[::]:1500")
		},
		want: []string{"receiver[clickstream/0].listen: tcp [::]:1500: already used by receiver[fullflow/0] (tcp 127.0.0.1:1500)"},
	}, {
		name: "IPv4 wildcard and IPv6 loopback coexist",
		change: func(c *Config) {
			c.Receivers[0].Listen = netip.MustParseAddrPort("0.0.0.0:1500")
			c.Receivers[1].Listen = netip.MustParseAddrPort("[::1]:1500")
		},
	}, {
		name: "tcp and udp on one port coexist",
		change: func(c *Config) {
			c.Receivers[1].Listen = c.Receivers[0].Listen
			c.Receivers[1].Proto = UDP
		},
	}, {
		name: "port 0 never collides",
		change: func(c *Config) {
			c.Receivers[0].Listen = netip.MustParseAddrPort("127.0.0.1:0")
			c.Receivers[1].Listen = netip.MustParseAddrPort("127.0.0.1:0")
		},
	}, {
		name: "same stream and dpi",
		change: func(c *Config) {
			c.Receivers[1].Stream = "fullflow"
			c.Receivers[1].Recording.RotateEvery = time.Minute
		},
		want: []string{"receiver[fullflow/0]: duplicate stream and dpi (receivers 0 and 1)"},
	}, {
		name: "zero values",
		change: func(c *Config) {
			c.Receivers[1] = Receiver{Stream: "clickstream"}
		},
		want: []string{
			"receiver[clickstream/0].listen: missing",
			"receiver[clickstream/0].mode: Mode(0): want RoundRobin, All or Recording",
			"receiver[clickstream/0].queue_bytes: 0: outside 65536..1099511627776",
			"receiver[clickstream/0].mtu: 0: outside 576..65535",
			"receiver[clickstream/0].recording.rotate_every: 0s: below the minimum 1s",
			"receiver[clickstream/0].recording.queue_bytes: 0: outside 65536..1099511627776",
		},
	}, {
		name: "subreceivers not in host:port form, or twice",
		change: func(c *Config) {
			c.Receivers[0].Mode = All
			c.Receivers[0].Subreceivers = []Subreceiver{
				{Addr: "10.0.0.1:1500"}, {Addr: "10.0.0.2/1500"}, {Addr: "10.0.0.1:1500"}, {Addr: "10.0.0.1:1500", Proto: UDP}, {Addr: "10.0.0.3:1", Proto: 7},
			}
			c.Receivers[1].Recording.Export = []Subreceiver{{Addr: "x:0"}}
		},
		want: []string{
			`receiver[fullflow/0].subreceivers[1]: "10.0.0.2/1500": want host:port`,
			`receiver[fullflow/0].subreceivers[2]: "10.0.0.1:1500": same as receiver[fullflow/0].subreceivers[0]`,
			`receiver[fullflow/0].subreceivers[4]: "10.0.0.3:1": want host:port`,
			`receiver[clickstream/0].recording.export[0]: "x:0": want host:port`,
		},
	}, {
		name: "cpu out of range",
		change: func(c *Config) {
			c.Receivers[0].CPU = affinity.CPUSet{1, 5000}
		},
		want: []string{"receiver[fullflow/0].cpu: 5000: cpu number outside 0..1023"},
	}, {
		name: "cpu not sorted",
		change: func(c *Config) {
			c.Receivers[0].CPU = affinity.CPUSet{5, 1}
		},
		want: []string{"receiver[fullflow/0].cpu: [5 1]: not sorted, or a cpu twice"},
	}, {
		name: "control socket path too long",
		change: func(c *Config) {
			c.ControlSocket = "/" + strings.Repeat("x", 107)
		},
		want: []string{`balancer.control_socket: "/` + strings.Repeat("x", 107) + `": longer than 107 bytes, too long for a unix socket`},
	}, {
		name:   "no receivers",
		change: func(c *Config) { c.Receivers = nil },
		want:   []string{"receiver: no receivers"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := twoReceivers(t)
			tc.change(c)
			err := c.Validate()
			if tc.want == nil {
				require.NoError(t, err)
				assertRoundTrip(t, c)
				return
			}
			require.Error(t, err)
			assert.Equal(t, strings.Join(tc.want, "\n"), err.Error())
			_, err = c.TOML()
			assert.Error(t, err, "TOML of an invalid config")
		})
	}
}

func TestModeAndProto(t *testing.T) {
	for _, m := range []Mode{RoundRobin, All, Recording} {
		text, err := m.MarshalText()
		require.NoError(t, err)
		assert.Equal(t, m.String(), string(text))
		var back Mode
		require.NoError(t, back.UnmarshalText(text))
		assert.Equal(t, m, back)
	}
	var m Mode
	require.NoError(t, m.UnmarshalText([]byte("Disabled")))
	assert.Equal(t, Recording, m)
	assert.EqualError(t, m.UnmarshalText([]byte("Round Robin")), `"Round Robin": bad mode (want RoundRobin, All or Recording)`)
	_, err := Mode(0).MarshalText()
	assert.Error(t, err)
	assert.Equal(t, "Mode(0)", Mode(0).String())

	for _, p := range []Proto{TCP, UDP} {
		text, err := p.MarshalText()
		require.NoError(t, err)
		var back Proto
		require.NoError(t, back.UnmarshalText([]byte(strings.ToUpper(string(text)))))
		assert.Equal(t, p, back)
	}
	var p Proto
	assert.EqualError(t, p.UnmarshalText([]byte("sctp")), `"sctp": bad proto (want tcp or udp)`)
	assert.Equal(t, "tcp 10.0.0.2:9920", Subreceiver{Addr: "10.0.0.2:9920"}.String())
}

func TestParseSubreceiver(t *testing.T) {
	f := func(in string, def Proto, want Subreceiver) {
		t.Helper()
		got, err := parseSubreceiver(in, def)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	f("10.19.3.21:1500", TCP, Subreceiver{"10.19.3.21:1500", TCP})
	f("10.19.3.21/1500", UDP, Subreceiver{"10.19.3.21:1500", UDP})
	f("10.0.0.3/3440/", UDP, Subreceiver{"10.0.0.3:3440", UDP}) // empty proto: the default
	f("10.0.0.2/9920/TCP", UDP, Subreceiver{"10.0.0.2:9920", TCP})
	f("[2001:DB8::1]:9", TCP, Subreceiver{"[2001:db8::1]:9", TCP}) // IPv6 normalised
	f("[2001:db8::1]/9/udp", TCP, Subreceiver{"[2001:db8::1]:9", UDP})
	f("2001:db8::1/9", TCP, Subreceiver{"[2001:db8::1]:9", TCP})
	f("collector_1.dc-2.example.net:4739", TCP, Subreceiver{"collector_1.dc-2.example.net:4739", TCP})
	f("localhost:0080", TCP, Subreceiver{"localhost:80", TCP})

	fe := func(in, wantErr string) {
		t.Helper()
		_, err := parseSubreceiver(in, TCP)
		assert.EqualError(t, err, wantErr, in)
	}
	fe("", `"": want host:port, ip/port or ip/port/proto`)
	fe("10.0.0.3/34x0", `"10.0.0.3/34x0": bad port`)
	fe("10.0.0.3:0", `"10.0.0.3:0": bad port`)
	fe("10.0.0.3:65536", `"10.0.0.3:65536": bad port`)
	fe("10.0.0.3", `"10.0.0.3": want host:port, ip/port or ip/port/proto`)
	fe("10.0.0.3/1/udp/x", `"10.0.0.3/1/udp/x": want host:port, ip/port or ip/port/proto`)
	fe("10.0.0.3/1/sctp", `"10.0.0.3/1/sctp": bad proto (want tcp or udp)`)
	fe(":1500", `":1500": missing host`)
	fe("[::]:1500", `"[::]:1500": unspecified address`)
	fe("10.0.0.300:1", `"10.0.0.300:1": bad host`)
	fe("host..example:1", `"host..example:1": bad host`)
	fe("-host:1", `"-host:1": bad host`)
	fe("host name:1", `"host name:1": bad host`)
	fe("[::1/1", `"[::1/1": bad host`)
	fe("[fe80::1%eth 0]:1", `"[fe80::1%eth 0]:1": bad zone`)
	f("fe80::1%eth0.100/1/udp", TCP, Subreceiver{"[fe80::1%eth0.100]:1", UDP})
}

func TestParseListen(t *testing.T) {
	f := func(in string, def uint16, want string) {
		t.Helper()
		got, err := parseListen(in, def)
		require.NoError(t, err, in)
		assert.Equal(t, want, got.String(), in)
	}
	f("0.0.0.0:1500", 0, "0.0.0.0:1500")
	f("[::]:1500", 0, "[::]:1500")
	f(":1500", 0, "0.0.0.0:1500")
	f("10.0.0.1", 1501, "10.0.0.1:1501")
	f("::1", 1501, "[::1]:1501")
	f("[::1]", 1501, "[::1]:1501")
	f("127.0.0.1:0", 1500, "127.0.0.1:0")

	fe := func(in string, def uint16, wantErr string) {
		t.Helper()
		_, err := parseListen(in, def)
		assert.EqualError(t, err, wantErr, in)
	}
	fe("10.0.0.1", 0, `"10.0.0.1": missing port`)
	fe("localhost:1500", 0, `"localhost:1500": want an IP address, not a host name`)
	fe("10.0.0.1:x", 0, `"10.0.0.1:x": bad port "x"`)
	fe(":x", 0, `":x": bad port`)
	fe("10.0.0.1/1500", 0, `"10.0.0.1/1500": want ip:port`)
}

func TestFormatDuration(t *testing.T) {
	f := func(d time.Duration, want string) {
		t.Helper()
		assert.Equal(t, want, formatDuration(d))
		back, err := parseDuration(want)
		require.NoError(t, err)
		assert.Equal(t, d, back)
	}
	f(0, "0s")
	f(time.Second, "1s")
	f(90*time.Second, "1m30s")
	f(10*time.Minute, "10m")
	f(time.Hour, "1h")
	f(90*time.Minute, "1h30m")
	f(time.Hour+time.Second, "1h0m1s")
	f(1500*time.Millisecond, "1.5s")
	f(24*time.Hour, "24h")
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()

	path := filepath.Join(dir, "ipfix-balancer.toml")
	require.NoError(t, os.WriteFile(path, []byte("[log]\nlevel = \"warn\"\n"), 0o644))
	cfg, err := Load(path)
	require.NoError(t, err)
	assert.Equal(t, "warn", cfg.Log.Level)

	// A legacy file is recognised by its name or by its content, and its
	// warnings are logged.
	env := "IPFIX_FULLFLOW_PORT[0]=1500\nASNUM_DIC_AUTOLOAD_ENABLED=1\n"
	for _, name := range []string{".env", "balancer.conf"} {
		logs := captureLog(t)
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(env), 0o644))
		cfg, err := Load(path)
		require.NoError(t, err, name)
		require.Len(t, cfg.Receivers, 1)
		assert.Equal(t, "0.0.0.0:1500", cfg.Receivers[0].Listen.String())
		assert.Equal(t, LegacyDumpDir, cfg.Receivers[0].Recording.Dir)
		assert.Contains(t, logs.String(), `level=WARN msg="legacy config setting" file=`+path+` warning="`+path+`:2: ASNUM_DIC_AUTOLOAD_ENABLED: ignored: collector setting"`)
	}

	_, err = Load(filepath.Join(dir, "missing.toml"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

func TestKeyLines(t *testing.T) {
	in := `# comment [not.a.table]
top = 1
[metrics]
listen = """
fake = "key"
[fake.table]
"""
"quoted.key" = 'x'
a.b.c = [
  "x = 1", # [no]
  { y = 2 },
]
[[receiver]]
stream = 'it''s' # literal strings have no escapes
[receiver.recording]
dir = "d\"]"
[[receiver]]
  stream = "b"
  recording = { dir = "e" }
[ loader ]
dir = '''
[[receiver]]
'''
after = 1
`
	got := keyLines([]byte(in))
	assert.Equal(t, map[string]int{
		"top":                       2,
		"metrics":                   3,
		"metrics.listen":            4,
		`metrics."quoted.key"`:      8,
		"metrics.a":                 9,
		"metrics.a.b":               9,
		"metrics.a.b.c":             9,
		"receiver[0]":               13,
		"receiver[0].stream":        14,
		"receiver[0].recording":     15,
		"receiver[0].recording.dir": 16,
		"receiver[1]":               17,
		"receiver[1].stream":        18,
		"receiver[1].recording":     19,
		"loader":                    20,
		"loader.dir":                21,
		"loader.after":              24,
	}, got)
	assert.Equal(t, 19, lookupLine(got, "receiver[1].recording.dir"))
	assert.Equal(t, 0, lookupLine(got, "nothing.here"))
}
