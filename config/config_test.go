package config

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
)

// captureLog sends slog's default logger to a buffer for the test.
func captureLog(t testing.TB) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&b, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &b
}

func mustParse(t testing.TB, in string) *Config {
	t.Helper()
	cfg, err := Parse([]byte(in), "test.toml")
	require.NoError(t, err)
	return cfg
}

func TestDefault(t *testing.T) {
	cfg := Default()
	require.NoError(t, cfg.Validate())

	assert.Equal(t, "127.0.0.1:9740", cfg.Metrics.Listen)
	assert.Equal(t, "info", cfg.Log.Level)
	assert.Equal(t, slog.LevelInfo, cfg.Log.SlogLevel())
	assert.Equal(t, 60*time.Second, cfg.StatsEvery)
	assert.Equal(t, 5*time.Second, cfg.ShutdownTimeout)
	assert.Equal(t, "/run/ipfix-balancer/control.sock", cfg.ControlSocket)
	require.Len(t, cfg.Receivers, 3)
	for i, want := range []struct{ name, listen string }{
		{"fullflow/0", "127.0.0.1:1500"},
		{"clickstream/0", "127.0.0.1:1501"},
		{"dnsflow/0", "127.0.0.1:1101"},
	} {
		r := &cfg.Receivers[i]
		assert.Equal(t, want.name, r.Name())
		assert.Equal(t, want.listen, r.Listen.String())
		assert.Equal(t, TCP, r.Proto)
		assert.Equal(t, Recording, r.Mode)
		assert.Equal(t, "dump", r.Recording.Dir)
		assert.Empty(t, r.Subreceivers)
		assert.Empty(t, r.CPU)
	}
	assert.Equal(t, Loader{
		Dir:         "dump",
		ClickHouse:  "http://127.0.0.1:8123",
		Database:    "ipfix",
		User:        "default",
		Parallel:    2,
		AfterLoad:   "move",
		Retention:   24 * time.Hour,
		BatchRows:   100000,
		PollEvery:   5 * time.Second,
		ShardingKey: "login",
		FullflowAgg: Aggregate{
			Fields: []string{"dpi", "login", "source_ipv4_address", "source_ipv6_address", "hostname", "protocol_identifier", "vdpi_proto"},
			Period: 5 * time.Minute,
		},
		ClickstreamAgg: Aggregate{Fields: []string{"dpi", "login", "hostname"}, Period: time.Hour},
		NAT:            NAT{AggInterval: 5 * time.Minute},
		MetricsListen:  "127.0.0.1:9741",
	}, cfg.Loader)

	// The embedded file loads like any other, and each call is a new value.
	assert.Equal(t, cfg, mustParse(t, string(DefaultTOML)))
	cfg.Receivers[0].Stream = "changed"
	assert.Equal(t, "fullflow", Default().Receivers[0].Stream)
}

// TestDefaultFileIsComplete checks that default.toml sets every key of the
// top-level sections: they are the defaults of every other file.
func TestDefaultFileIsComplete(t *testing.T) {
	var f fileConfig
	md, err := toml.Decode(string(DefaultTOML), &f)
	require.NoError(t, err)
	for _, section := range []struct {
		name string
		v    any
	}{{"metrics", fileMetrics{}}, {"console", fileConsole{}}, {"log", fileLog{}}, {"balancer", fileBalancer{}}, {"loader", fileLoader{}}} {
		var b bytes.Buffer
		require.NoError(t, toml.NewEncoder(&b).Encode(section.v))
		var keys map[string]any
		_, err := toml.Decode(b.String(), &keys)
		require.NoError(t, err)
		for k := range keys {
			assert.True(t, md.IsDefined(section.name, k), "default.toml lacks %s.%s", section.name, k)
		}
	}
}

func TestParse(t *testing.T) {
	def := Default()
	tests := []struct {
		name  string
		in    string
		check func(t *testing.T, c *Config)
	}{{
		name:  "empty file is the default",
		in:    "",
		check: func(t *testing.T, c *Config) { assert.Equal(t, def, c) },
	}, {
		name: "a section key overrides one default",
		in:   "[metrics]\nlisten = \"\"\n[loader]\nparallel = 4\n",
		check: func(t *testing.T, c *Config) {
			assert.Equal(t, "", c.Metrics.Listen)
			assert.Equal(t, 4, c.Loader.Parallel)
			assert.Equal(t, def.Loader.ClickHouse, c.Loader.ClickHouse)
			assert.Equal(t, def.Receivers, c.Receivers)
		},
	}, {
		name: "receivers replace the default receivers",
		in:   "[[receiver]]\nstream = \"natflow\"\n[receiver.recording]\ndir = \"/d\"\n",
		check: func(t *testing.T, c *Config) {
			require.Len(t, c.Receivers, 1)
			assert.Equal(t, "natflow/0", c.Receivers[0].Name())
		},
	}, {
		name: "defaults by stream",
		in: `
[[receiver]]
stream = "fullflow"
subreceivers = ["10.0.0.1:1"]
[[receiver]]
stream = "clickstream"
subreceivers = ["10.0.0.1:1"]
[[receiver]]
stream = "dnsflow"
subreceivers = ["10.0.0.1:1"]
[[receiver]]
stream = "gtpflow"
subreceivers = ["10.0.0.1:1"]
[[receiver]]
stream = "natflow"
subreceivers = ["10.0.0.1:1"]
[[receiver]]
stream = "sip"
listen = "0.0.0.0:1600"
recording.dir = "dump"
`,
		check: func(t *testing.T, c *Config) {
			want := []struct {
				listen string
				rotate time.Duration
				mode   Mode
			}{
				{"0.0.0.0:1500", 10 * time.Minute, RoundRobin},
				{"0.0.0.0:1501", 12 * time.Minute, RoundRobin},
				{"0.0.0.0:1101", 10 * time.Minute, RoundRobin},
				{"0.0.0.0:1502", 10 * time.Minute, RoundRobin},
				{"0.0.0.0:1503", 10 * time.Minute, RoundRobin},
				{"0.0.0.0:1600", 10 * time.Minute, Recording},
			}
			require.Len(t, c.Receivers, len(want))
			for i, w := range want {
				r := c.Receivers[i]
				assert.Equal(t, w.listen, r.Listen.String(), r.Name())
				assert.Equal(t, w.rotate, r.Recording.RotateEvery, r.Name())
				assert.Equal(t, w.mode, r.Mode, r.Name())
				assert.Equal(t, 0, r.DPI, r.Name())
				assert.Equal(t, TCP, r.Proto)
				assert.Equal(t, TCP, r.SubreceiverProto)
				assert.Equal(t, 32<<20, r.QueueBytes)
				assert.Equal(t, 1500, r.MTU)
				assert.Equal(t, 32<<20, r.UDPReadBuffer)
				assert.Equal(t, 30*time.Minute, r.TemplateLifetime)
				assert.Equal(t, 64<<20, r.Recording.QueueBytes)
				assert.Zero(t, r.Recording.RotateRecords)
				assert.Zero(t, r.Recording.MaxBytes)
				assert.Zero(t, r.Recording.MaxAge)
			}
		},
	}, {
		name: "dpi by order within a stream",
		in: `
[[receiver]]
stream = "fullflow"
listen = ":1500"
recording.dir = "d"
[[receiver]]
stream = "clickstream"
recording.dir = "d"
[[receiver]]
stream = "fullflow"
listen = ":1510"
recording.dir = "d"
[[receiver]]
stream = "fullflow"
dpi = 7
listen = ":1520"
recording.dir = "d"
`,
		check: func(t *testing.T, c *Config) {
			var names []string
			for i := range c.Receivers {
				names = append(names, c.Receivers[i].Name())
			}
			assert.Equal(t, []string{"fullflow/0", "clickstream/0", "fullflow/1", "fullflow/7"}, names)
		},
	}, {
		name: "cpu as a number or a list",
		in: `
[[receiver]]
stream = "fullflow"
cpu = 61
recording.dir = "d"
[[receiver]]
stream = "clickstream"
cpu = "0-3,8"
recording.dir = "d"
[[receiver]]
stream = "dnsflow"
cpu = ""
recording.dir = "d"
`,
		check: func(t *testing.T, c *Config) {
			assert.Equal(t, affinity.CPUSet{61}, c.Receivers[0].CPU)
			assert.Equal(t, affinity.CPUSet{0, 1, 2, 3, 8}, c.Receivers[1].CPU)
			assert.Empty(t, c.Receivers[2].CPU)
		},
	}, {
		name: "subreceiver and export forms",
		in: `
[[receiver]]
stream = "fullflow"
mode = "all"
subreceiver_proto = "UDP"
subreceivers = ["10.19.3.21:1500", "10.19.3.23/1600", "collector-2.example.net/1600/tcp", "[2001:db8::1]:9", "2001:db8::2/010/", " 10.0.0.1 / 5 / tcp "]
recording.export = ["10.0.0.2/9920/tcp", "10.0.0.3/3440/", "10.0.0.4/3441/udp", "localhost:9"]
`,
		check: func(t *testing.T, c *Config) {
			r := c.Receivers[0]
			assert.Equal(t, All, r.Mode)
			assert.Equal(t, UDP, r.SubreceiverProto)
			assert.Equal(t, []Subreceiver{
				{Addr: "10.19.3.21:1500", Proto: UDP},
				{Addr: "10.19.3.23:1600", Proto: UDP},
				{Addr: "collector-2.example.net:1600", Proto: TCP},
				{Addr: "[2001:db8::1]:9", Proto: UDP},
				{Addr: "[2001:db8::2]:10", Proto: UDP},
				{Addr: "10.0.0.1:5", Proto: TCP},
			}, r.Subreceivers)
			assert.Equal(t, []Subreceiver{
				{Addr: "10.0.0.2:9920", Proto: TCP},
				{Addr: "10.0.0.3:3440", Proto: TCP},
				{Addr: "10.0.0.4:3441", Proto: UDP},
				{Addr: "localhost:9", Proto: TCP},
			}, r.Recording.Export)
		},
	}, {
		name: "listen forms",
		in: `
[[receiver]]
stream = "fullflow"
listen = "10.1.2.3"
recording.dir = "d"
[[receiver]]
stream = "clickstream"
listen = "::1"
recording.dir = "d"
[[receiver]]
stream = "dnsflow"
listen = ":1600"
recording.dir = "d"
[[receiver]]
stream = "dnsflow"
listen = "[::]:1601"
proto = "udp"
recording.dir = "d"
[[receiver]]
stream = "gtpflow"
listen = "127.0.0.1:0"
recording.dir = "d"
`,
		check: func(t *testing.T, c *Config) {
			var got []string
			for _, r := range c.Receivers {
				got = append(got, r.Proto.String()+" "+r.Listen.String())
			}
			assert.Equal(t, []string{"tcp 10.1.2.3:1500", "tcp [::1]:1501", "tcp 0.0.0.0:1600", "udp [::]:1601", "tcp 127.0.0.1:0"}, got)
		},
	}, {
		name: "mode words ignore case and Disabled means Recording",
		in: `
[[receiver]]
stream = "fullflow"
mode = "DISABLED"
subreceivers = ["10.0.0.1:1"]
recording.dir = "d"
[[receiver]]
stream = "clickstream"
mode = "roundrobin"
subreceivers = ["10.0.0.1:1"]
`,
		check: func(t *testing.T, c *Config) {
			assert.Equal(t, Recording, c.Receivers[0].Mode)
			assert.Equal(t, RoundRobin, c.Receivers[1].Mode)
		},
	}, {
		name: "every receiver key",
		in: `
[log]
level = "DEBUG"
[balancer]
stats_every = "0s"
[[receiver]]
stream = "clickstream"
dpi = 3
listen = "10.0.0.1:4739"
proto = "udp"
mode = "Recording"
cpu = "2,5-6"
queue_bytes = 65536
mtu = 9000
udp_read_buffer_bytes = 0
template_lifetime = "1h30m"
[receiver.recording]
dir = "/var/dump"
rotate_every = "1s"
rotate_records = 1000000
export = ["10.0.0.2:9920"]
queue_bytes = 1048576
max_bytes = 1099511627776
max_age = "72h"
[receiver.spool]
dir = "/var/spool"
max_bytes = 1048576
min_free_bytes = 0
drop = "newest"
`,
		check: func(t *testing.T, c *Config) {
			assert.Equal(t, "debug", c.Log.Level)
			assert.Equal(t, slog.LevelDebug, c.Log.SlogLevel())
			assert.Zero(t, c.StatsEvery)
			assert.Equal(t, []Receiver{{
				Stream:           "clickstream",
				DPI:              3,
				Listen:           netip.MustParseAddrPort("10.0.0.1:4739"),
				Proto:            UDP,
				Mode:             Recording,
				CPU:              affinity.CPUSet{2, 5, 6},
				QueueBytes:       65536,
				MTU:              9000,
				TemplateLifetime: 90 * time.Minute,
				Recording: Recorder{
					Dir:           "/var/dump",
					RotateEvery:   time.Second,
					RotateRecords: 1000000,
					Export:        []Subreceiver{{Addr: "10.0.0.2:9920"}},
					QueueBytes:    1 << 20,
					MaxBytes:      1 << 40,
					MaxAge:        72 * time.Hour,
				},
				Spool: Spool{Dir: "/var/spool", MaxBytes: 1 << 20, Drop: "newest"},
			}}, c.Receivers)
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustParse(t, tc.in)
			require.NoError(t, c.Validate())
			tc.check(t, c)
			assertRoundTrip(t, c)
		})
	}
}

// assertRoundTrip checks that c prints as TOML that parses back to c, and
// prints the same again.
func assertRoundTrip(t testing.TB, c *Config) {
	t.Helper()
	out, err := c.TOML()
	require.NoError(t, err)
	back, err := Parse(out, "printed.toml")
	require.NoError(t, err, "printed config:\n%s", out)
	assert.Equal(t, c, back, "(-got, +want) printed config:\n%s", out)
	again, err := back.TOML()
	require.NoError(t, err)
	assert.Equal(t, string(out), string(again))
}

func TestParseErrors(t *testing.T) {
	f := func(in string, want ...string) {
		t.Helper()
		cfg, err := Parse([]byte(in), "test.toml")
		assert.Nil(t, cfg)
		require.Error(t, err)
		assert.Equal(t, strings.Join(want, "\n"), err.Error())
	}

	// Unknown keys name their path with the receiver's index, and the line.
	f(`
[metrics]
listen = "127.0.0.1:9740"
lisen = "x"

[[receiver]]
stream = "fullflow"
recording.dir = "d"

[[receiver]]
stream = "clickstream"
dpo = 1
[receiver.recording]
dir = "d"
rotate_evry = "10m"
[receiver.recordin]
dir = "x"
[receiver.recordin.deeper]
a = 1

[[receiver]]
stream = "dnsflow"
recording = { dir = "d", rotate_evry = "1m" }
"quoted key" = 1
Mode = "All"

[Loader]
dir = "x"
`,
		"test.toml:4: unknown key metrics.lisen",
		"test.toml:12: unknown key receiver[1].dpo",
		"test.toml:15: unknown key receiver[1].recording.rotate_evry",
		"test.toml:16: unknown key receiver[1].recordin",
		"test.toml:23: unknown key receiver[2].recording.rotate_evry",
		`test.toml:24: unknown key receiver[2]."quoted key"`,
		"test.toml:25: unknown key receiver[2].Mode",
		"test.toml:27: unknown key Loader",
	)

	// Bad values are all reported at once, with their key paths.
	f(`
[metrics]
listen = "127.0.0.1"
[log]
level = "verbose"
[balancer]
stats_every = "1 minute"
shutdown_timeout = "0s"
[[receiver]]
stream = "fullflow"
mode = "RoundRobin"
[[receiver]]
stream = "clickstream"
dpi = 1
mode = "Balanced"
proto = "sctp"
subreceivers = ["10.0.0.1:3440", "10.0.0.2/3440", "10.0.0.3/34x0", "10.0.0.1:3440", "10.0.0.300:1", "0.0.0.0:1"]
subreceiver_proto = "tcp6"
cpu = "0-3,x"
queue_bytes = 1000
mtu = 100
template_lifetime = "-1s"
[receiver.recording]
rotate_every = "500ms"
export = ["10.0.0.2/9920/http"]
max_age = "forever"
[[receiver]]
stream = "Fullflow"
listen = "localhost:1500"
[[receiver]]
stream = "sip"
mode = "Recording"
[[receiver]]
stream = "dnsflow"
cpu = 4096
listen = "0.0.0.0:1500"
[receiver.recording]
dir = "d"
[[receiver]]
stream = "dnsflow"
dpi = 0
listen = "127.0.0.1:1101"
recording.dir = "d"
[loader]
clickhouse = "127.0.0.1:8123"
after_load = "keep"
parallel = 0
cluster = "main"
sharding_key = ""
`,
		`test.toml:3: metrics.listen: "127.0.0.1": want host:port`,
		`test.toml:5: log.level: "verbose": want debug, info, warn or error`,
		`test.toml:7: balancer.stats_every: "1 minute": bad duration (want e.g. "90s", "10m", "1h30m")`,
		`test.toml:8: balancer.shutdown_timeout: 0s: must be positive`,
		// A problem of a key the file does not set is at its table's line.
		`test.toml:9: receiver[fullflow/0].subreceivers: mode RoundRobin needs at least one subreceiver`,
		`test.toml:15: receiver[clickstream/1].mode: "Balanced": bad mode (want RoundRobin, All or Recording)`,
		`test.toml:16: receiver[clickstream/1].proto: "sctp": bad proto (want tcp or udp)`,
		`test.toml:17: receiver[clickstream/1].subreceivers[2]: "10.0.0.3/34x0": bad port`,
		`test.toml:17: receiver[clickstream/1].subreceivers[3]: "10.0.0.1:3440": same as receiver[clickstream/1].subreceivers[0]`,
		`test.toml:17: receiver[clickstream/1].subreceivers[4]: "10.0.0.300:1": bad host`,
		`test.toml:17: receiver[clickstream/1].subreceivers[5]: "0.0.0.0:1": unspecified address`,
		`test.toml:18: receiver[clickstream/1].subreceiver_proto: "tcp6": bad proto (want tcp or udp)`,
		`test.toml:19: receiver[clickstream/1].cpu: cpu list "0-3,x": "x": not a cpu number`,
		`test.toml:20: receiver[clickstream/1].queue_bytes: 1000: outside 65536..1099511627776`,
		`test.toml:21: receiver[clickstream/1].mtu: 100: outside 576..65535`,
		`test.toml:22: receiver[clickstream/1].template_lifetime: "-1s": negative duration`,
		`test.toml:24: receiver[clickstream/1].recording.rotate_every: 500ms: below the minimum 1s`,
		`test.toml:25: receiver[clickstream/1].recording.export[0]: "10.0.0.2/9920/http": bad proto (want tcp or udp)`,
		`test.toml:26: receiver[clickstream/1].recording.max_age: "forever": bad duration (want e.g. "90s", "10m", "1h30m")`,
		`test.toml:27: receiver[2].recording.dir: mode Recording needs a dump directory`,
		`test.toml:28: receiver[2].stream: "Fullflow": want a label of a-z, 0-9 and _ (fullflow, clickstream, dnsflow...)`,
		`test.toml:29: receiver[2].listen: "localhost:1500": want an IP address, not a host name`,
		`test.toml:30: receiver[sip/0].listen: required: stream sip has no default port`,
		`test.toml:30: receiver[sip/0].recording.dir: mode Recording needs a dump directory`,
		`test.toml:35: receiver[dnsflow/0].cpu: 4096: cpu number outside 0..1023`,
		`test.toml:36: receiver[dnsflow/0].listen: tcp 0.0.0.0:1500: already used by receiver[fullflow/0] (tcp 0.0.0.0:1500)`,
		`test.toml:39: receiver[dnsflow/0]: duplicate stream and dpi (receivers 4 and 5)`,
		`test.toml:45: loader.clickhouse: "127.0.0.1:8123": want an http:// or https:// URL`,
		`test.toml:46: loader.after_load: "keep": want move or delete`,
		`test.toml:47: loader.parallel: 0: outside 1..64`,
		`test.toml:49: loader.sharding_key: missing: a cluster needs a sharding key`,
	)

	// No receivers at all.
	f("receiver = []\n", "test.toml:1: receiver: no receivers")
	// A value of the wrong type stops the decoder; the file, line and key are named.
	f("[[receiver]]\nstream = \"fullflow\"\nmtu = \"big\"\n",
		`test.toml:3: receiver[0].mtu: incompatible types: TOML value has type string; destination has type integer`)
	f("[[receiver]]\nstream = \"fullflow\"\ncpu = [1, 2]\nrecording.dir = \"d\"\n",
		`test.toml:3: receiver[fullflow/0].cpu: want a cpu number (61) or a cpu list string ("0-3,8")`)
	f("[[receiver]]\nstream = \"fullflow\"\ncpu = -1\nrecording.dir = \"d\"\n",
		`test.toml:3: receiver[fullflow/0].cpu: -1: cpu number outside 0..1023`)
}

func TestParseSyntaxError(t *testing.T) {
	_, err := Parse([]byte("[metrics]\nlisten = \"x\"\n[log]\nlevel = \"info\n"), "test.toml")
	require.Error(t, err)
	var pe toml.ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, 4, pe.Position.Line)
	assert.Equal(t, strings.Join([]string{
		"test.toml:4:14: strings cannot contain newlines",
		"",
		`      3 | [log]`,
		`      4 | level = "info`,
		`                       ^`,
	}, "\n"), err.Error())
}

func TestSpoolErrors(t *testing.T) {
	_, err := Parse([]byte(`
[[receiver]]
stream = "fullflow"
subreceivers = ["10.0.0.2:9920"]
[receiver.spool]
dir = "spool"
max_bytes = -1
min_free_bytes = -2
drop = "middle"
drp = "x"
`), "test.toml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "receiver[0].spool.drp")
	_, err = Parse([]byte(`
[[receiver]]
stream = "fullflow"
subreceivers = ["10.0.0.2:9920"]
[receiver.spool]
dir = "spool"
max_bytes = -1
min_free_bytes = -2
drop = "middle"
`), "test.toml")
	require.Error(t, err)
	assert.Equal(t, `test.toml:7: receiver[fullflow/0].spool.max_bytes: -1: negative
test.toml:8: receiver[fullflow/0].spool.min_free_bytes: -2: negative
test.toml:9: receiver[fullflow/0].spool.drop: "middle": want oldest or newest`, err.Error())
}

// The [loader] section is the loader's configuration: an aggregate or NAT
// interval left empty or 0 keeps default.toml's value, and a file that sets
// an aggregate leaves the defaults of every later parse as they were.
func TestLoaderSection(t *testing.T) {
	def := Default().Loader
	c := mustParse(t, "[loader]\nfullflow_agg_fields = []\nfullflow_agg_period = \"0s\"\nclickstream_agg_period = \"0m\"\nnat_agg_log_group_time_interval = 0\n")
	assert.Equal(t, def, c.Loader)

	c = mustParse(t, "[loader]\nfullflow_agg_fields = [\"login\", \"hostname\"]\nclickstream_agg_fields = [\"login\"]\n"+
		"nat_agg_log_fields_to_save_bitmask = 0x7ff\nnat_agg_log_group_time_interval = 60\n")
	assert.Equal(t, Aggregate{Fields: []string{"login", "hostname"}, Period: 5 * time.Minute}, c.Loader.FullflowAgg)
	assert.Equal(t, Aggregate{Fields: []string{"login"}, Period: time.Hour}, c.Loader.ClickstreamAgg)
	assert.Equal(t, NAT{AggFields: 0x7ff, AggInterval: time.Hour}, c.Loader.NAT)
	ff := []string{"dpi", "login", "source_ipv4_address", "source_ipv6_address", "hostname", "protocol_identifier", "vdpi_proto"}
	assert.Equal(t, ff, Default().Loader.FullflowAgg.Fields, "a parse changed the defaults")
	assert.Equal(t, ff, mustParse(t, "").Loader.FullflowAgg.Fields, "a parse changed the defaults")
	assert.Equal(t, ff, def.FullflowAgg.Fields, "a parse changed an earlier configuration")

	// The printed configuration reads back the same.
	out, err := c.TOML()
	require.NoError(t, err)
	assert.Equal(t, c.Loader, mustParse(t, string(out)).Loader)

	// Validate checks a Loader changed by hand, every problem at once.
	l := def
	l.BatchRows, l.NAT.AggInterval, l.Shards, l.FullflowAgg.Period = 2_000_000, 7*time.Minute, []string{"ch1"}, 7*time.Minute
	err = l.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"loader.batch_rows: 2000000: outside 1..1000000",
		"loader.nat_agg_log_group_time_interval: 7: want 1, 5, 10, 15, 30 or 60 (minutes)",
		"loader.shards: set without loader.cluster",
		`loader.shards[0]: "ch1": want http://HOST:PORT`,
		"loader.fullflow_agg_period: 7m0s: want whole minutes dividing a day",
	} {
		assert.Contains(t, err.Error(), want)
	}
	require.NoError(t, def.Validate())
}
