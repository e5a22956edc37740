package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBalancerAutoExpands(t *testing.T) {
	cfg := mustParse(t, `
[[receiver]]
stream = "fullflow"
listen = "0.0.0.0:1500"
subreceivers = ["127.0.0.1:9920", "192.0.2.7:9921", "[::1]:9922/udp", "localhost:9923"]
balancer_auto = true
[receiver.recording]
dir = "/srv/dump"
rotate_every = "5m"
rotate_records = 1000

[[receiver]]
stream = "dnsflow"
subreceivers = ["127.0.0.1:9930"]
`)
	require.Len(t, cfg.FileReceivers(), 2)
	require.Len(t, cfg.Receivers, 5, "the two receivers of the file, then the three local recorders of fullflow/0")
	var names []string
	for _, r := range cfg.Receivers {
		names = append(names, r.Name())
	}
	// 192.0.2.7 (TEST-NET-1) is another host: left alone; dnsflow/0 has no
	// balancer_auto.
	assert.Equal(t, []string{"fullflow/0", "dnsflow/0", "fullflow/1000", "fullflow/3000", "fullflow/4000"}, names)
	want := []struct {
		listen string
		proto  Proto
		sub    int
	}{{"127.0.0.1:9920", TCP, 0}, {"[::1]:9922", UDP, 2}, {"127.0.0.1:9923", TCP, 3}}
	for i, w := range want {
		r := cfg.Receivers[2+i]
		assert.Equal(t, netip.MustParseAddrPort(w.listen), r.Listen, r.Name())
		assert.Equal(t, w.proto, r.Proto, r.Name())
		assert.Equal(t, Recording, r.Mode, r.Name())
		assert.Equal(t, "fullflow/0", r.AutoOf, r.Name())
		assert.Equal(t, w.sub, r.AutoSub, r.Name())
		assert.Equal(t, "/srv/dump", r.Recording.Dir, r.Name())
		assert.Equal(t, int64(1000), r.Recording.RotateRecords, r.Name())
		assert.Equal(t, "5m0s", r.Recording.RotateEvery.String(), r.Name())
		assert.Empty(t, r.Recording.Export, r.Name())
	}
	assert.Equal(t, []string{
		"receiver fullflow/0 subreceiver tcp 127.0.0.1:9920: recorded here as fullflow/1000 (balancer_auto)",
		"receiver fullflow/0 subreceiver udp [::1]:9922: recorded here as fullflow/3000 (balancer_auto)",
		"receiver fullflow/0 subreceiver tcp 127.0.0.1:9923: recorded here as fullflow/4000 (balancer_auto)",
	}, cfg.LocalRecorders())
	// The printed configuration holds balancer_auto, not the recorders it
	// makes: parsing it makes them again.
	out, err := cfg.TOML()
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(out), "balancer_auto = true"), "%s", out)
	assert.Equal(t, 2, strings.Count(string(out), "[[receiver]]"), "%s", out)
	assertRoundTrip(t, cfg)
}

func TestBalancerAutoNothingLocal(t *testing.T) {
	cfg := mustParse(t, `
[[receiver]]
stream = "fullflow"
subreceivers = ["192.0.2.7:9920", "collector.example:9921"]
balancer_auto = true
`)
	// No local subreceiver: no recorder and no dump dir needed.
	assert.Len(t, cfg.Receivers, 1)
	assert.Empty(t, cfg.LocalRecorders())
}

func TestBalancerAutoErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{{
		name: "no dump dir",
		in: `[[receiver]]
stream = "fullflow"
subreceivers = ["127.0.0.1:9920", "127.0.0.1:9921"]
balancer_auto = true
`,
		want: `test.toml:1: receiver[0].recording.dir: missing: balancer_auto records subreceivers on this host (tcp 127.0.0.1:9920, tcp 127.0.0.1:9921) and needs a dump directory`,
	}, {
		name: "recording mode",
		in: `[[receiver]]
stream = "fullflow"
mode = "Recording"
balancer_auto = true
[receiver.recording]
dir = "d"
`,
		want: `test.toml:4: receiver[0].balancer_auto: needs mode RoundRobin or All (mode is Recording)`,
	}, {
		name: "dpi too high",
		in: `[[receiver]]
stream = "fullflow"
dpi = 1000
subreceivers = ["127.0.0.1:9920"]
balancer_auto = true
[receiver.recording]
dir = "d"
`,
		want: `test.toml:3: receiver[0].dpi: 1000: balancer_auto needs a dpi below 1000 (its local recorders are numbered 1000*(subreceiver+1)+dpi)`,
	}, {
		name: "recorder on a receiver's address",
		in: `[[receiver]]
stream = "fullflow"
listen = "127.0.0.1:9920"
mode = "Recording"
[receiver.recording]
dir = "d"

[[receiver]]
stream = "clickstream"
subreceivers = ["127.0.0.1:9920"]
balancer_auto = true
[receiver.recording]
dir = "d"
`,
		want: `test.toml:10: receiver[1].subreceivers[0]: local recorder clickstream/1000: receiver[clickstream/1000].listen: tcp 127.0.0.1:9920: already used by receiver[fullflow/0] (tcp 127.0.0.1:9920)`,
	}, {
		name: "recorder named like a receiver",
		in: `[[receiver]]
stream = "fullflow"
dpi = 1000
listen = "127.0.0.1:1600"
mode = "Recording"
[receiver.recording]
dir = "d"

[[receiver]]
stream = "fullflow"
dpi = 0
subreceivers = ["127.0.0.1:9920"]
balancer_auto = true
[receiver.recording]
dir = "d"
`,
		want: `test.toml:12: receiver[1].subreceivers[0]: local recorder fullflow/1000: receiver[fullflow/1000]: duplicate stream and dpi (receivers 0 and 2)`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in), "test.toml")
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}
