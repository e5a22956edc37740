package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
)

// A bad value names the file and the line of its key (or of its table when
// the key is not in the file), as the legacy .env errors do.
func TestParseErrorsNameFileAndLine(t *testing.T) {
	_, err := Parse([]byte(`[log]
level = "info"

[[receiver]]
stream = "fullflow"
mode = "Foo"
[receiver.recording]
rotate_every = "soon"
dir = "d"

[[receiver]]
stream = "clickstream"
mode = "All"

[loader]
parallel = 0
`), "test.toml")
	require.Error(t, err)
	assert.Equal(t, strings.Join([]string{
		`test.toml:6: receiver[fullflow/0].mode: "Foo": bad mode (want RoundRobin, All or Recording)`,
		`test.toml:8: receiver[fullflow/0].recording.rotate_every: "soon": bad duration (want e.g. "90s", "10m", "1h30m")`,
		`test.toml:11: receiver[clickstream/0].subreceivers: mode All needs at least one subreceiver`,
		`test.toml:16: loader.parallel: 0: outside 1..64`,
	}, "\n"), err.Error())

	// A value of the wrong type: file, line and the indexed key.
	_, err = Parse([]byte("[[receiver]]\nstream = \"fullflow\"\n[[receiver]]\nstream = \"dnsflow\"\nmtu = \"big\"\n"), "test.toml")
	require.Error(t, err)
	assert.Equal(t, `test.toml:5: receiver[1].mtu: incompatible types: TOML value has type string; destination has type integer`, err.Error())
}

// A key in the wrong case is reported, and the rest of the file is still
// validated: every problem at once.
func TestWrongCaseKeyDoesNotStopValidation(t *testing.T) {
	_, err := Parse([]byte("[[receiver]]\nstream = \"fullflow\"\nMode = \"All\"\ndpi = -4\n[Loader]\ndir = \"x\"\n[loader]\nparallel = 0\n"), "test.toml")
	require.Error(t, err)
	assert.Equal(t, strings.Join([]string{
		`test.toml:1: receiver[fullflow/-4].recording.dir: mode Recording needs a dump directory`,
		`test.toml:3: unknown key receiver[0].Mode`,
		`test.toml:4: receiver[fullflow/-4].dpi: -4: outside 0..65535`,
		`test.toml:5: unknown key Loader`,
		`test.toml:8: loader.parallel: 0: outside 1..64`,
	}, "\n"), err.Error())
}

// A syntax error at the end of line 1 is reported at line 1, not at the
// start of line 2 where the decoder saw the newline.
func TestSyntaxErrorAtEndOfLine(t *testing.T) {
	_, err := Parse([]byte("[metrics\n\n[log]\nlevel = \"info\"\n"), "test.toml")
	require.Error(t, err)
	var pe toml.ParseError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, strings.Join([]string{
		`test.toml:1:9: expected '.' or ']' to end table name, but got '\n' instead`,
		``,
		`      1 | [metrics`,
		`                  ^`,
	}, "\n"), err.Error())
}

// "host:port/proto" with a proto we do not speak says so.
func TestSubreceiverHostPortProto(t *testing.T) {
	_, err := parseSubreceiver("10.0.0.1:9920/sctp", TCP)
	assert.EqualError(t, err, `"10.0.0.1:9920/sctp": bad proto (want tcp or udp)`)
	s, err := parseSubreceiver("10.0.0.1:9920/udp", TCP)
	require.NoError(t, err)
	assert.Equal(t, Subreceiver{Addr: "10.0.0.1:9920", Proto: UDP}, s)
}

// The legacy BALANCER= takes RoundRobin, All or Disabled: its error offers
// the legacy word.
func TestEnvBadModeOffersDisabled(t *testing.T) {
	_, _, err := ParseEnv([]byte("IPFIX_FULLFLOW_BALANCER[0]=Balanced\n"), "in.env")
	assert.EqualError(t, err, `in.env:1: IPFIX_FULLFLOW_BALANCER[0]: "Balanced": bad mode (want RoundRobin, All or Disabled)`)
}

// A receiver pinned to a CPU this machine lacks is valid (the receiver runs
// unpinned) but -check-config warns, naming the receiver and the CPUs there are.
func TestWarningsMissingCPU(t *testing.T) {
	c := mustParse(t, "[[receiver]]\nstream = \"fullflow\"\ncpu = \"0,1023\"\nrecording.dir = \"d\"\n")
	online := affinity.Online()
	require.False(t, online.Contains(1023), "this test needs a machine without cpu 1023")
	assert.Equal(t, []string{
		`receiver[fullflow/0].cpu: 0,1023: no cpu 1023 on this machine (it has ` + online.String() + `); the receiver will run unpinned`,
	}, c.Warnings())
	assert.Empty(t, Default().Warnings())
}

// convert-config prints what the .env said and what differs from the
// defaults, not every key: a RoundRobin receiver has no recording table.
func TestConvertEnvIsSparse(t *testing.T) {
	out, _, err := ConvertEnv([]byte("IPFIX_FULLFLOW_PORT[0]=1500\nIPFIX_FULLFLOW_BALANCER[0]=RoundRobin\nIPFIX_FULLFLOW_BALANCER_SUB[0]=10.0.0.2/9920\n"), "in.env")
	require.NoError(t, err)
	s := string(out)
	assert.NotContains(t, s, `dir = ""`)
	assert.NotContains(t, s, "[receiver.recording]")
	assert.NotContains(t, s, "mtu")
	assert.NotContains(t, s, "[metrics]")
	assert.Contains(t, s, "[loader]\ndir = \"/var/lib/ipfix-balancer/dump\"\n")
	assert.Contains(t, s, "subreceivers = [\"10.0.0.2:9920\"]\n")
}

func TestSubreceiverHostPortProtoIPv6(t *testing.T) {
	s, err := parseSubreceiver("[fe80::1]:9920/udp", TCP)
	require.NoError(t, err)
	assert.Equal(t, Subreceiver{Addr: "[fe80::1]:9920", Proto: UDP}, s)
	s, err = parseSubreceiver("fe80::1/9920/udp", TCP)
	require.NoError(t, err)
	assert.Equal(t, Subreceiver{Addr: "[fe80::1]:9920", Proto: UDP}, s)
}
