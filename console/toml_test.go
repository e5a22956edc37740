package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
)

const handFile = `# site config
[metrics]
listen = "127.0.0.1:0"

# the fullflow receiver of DPI 0
[[receiver]]
stream = "fullflow"
listen = "127.0.0.1:1500"   # the DPI exports here
mode = "All"
subreceivers = [
  "10.0.0.1:1500",   # store 1
  "10.0.0.2:1500",
]
queue_bytes = 1048576

# clickstream records
[[receiver]]
stream = "clickstream"
listen = "127.0.0.1:1501"
mode = "Recording"
[receiver.recording]
dir = "/var/dump"   # big disk
rotate_every = "12m"

# the loader
[loader]
dir = "/var/dump"
`

func proposeOn(t *testing.T, text string, f receiverForm) *proposal {
	t.Helper()
	path := filepath.Join(t.TempDir(), "b.toml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o640))
	c := &Console{opts: Options{ConfigPath: path}}
	p, err := c.propose(f)
	require.NoError(t, err)
	return p
}

func editForm(t *testing.T, text, name string) receiverForm {
	t.Helper()
	cfg, err := config.Parse([]byte(text), "b.toml")
	require.NoError(t, err)
	for _, rc := range cfg.Receivers {
		if rc.Name() == name {
			return formFromReceiver(rc)
		}
	}
	t.Fatalf("no receiver %s", name)
	return receiverForm{}
}

// TestEditKeepsTheRest: an edit changes only the keys it must, in place,
// with their comments; everything else is byte for byte the same.
func TestEditKeepsTheRest(t *testing.T) {
	f := editForm(t, handFile, "fullflow/0")
	f.Subreceivers = "10.0.0.1:1500, 10.0.0.3:1500"
	p := proposeOn(t, handFile, f)
	require.True(t, p.Errors.empty(), "%+v", p.Errors)
	// The dpi is spelt out (see keyEdit.Always), after the stream.
	want := strings.Replace(handFile, `subreceivers = [
  "10.0.0.1:1500",   # store 1
  "10.0.0.2:1500",
]`, `subreceivers = ["10.0.0.1:1500", "10.0.0.3:1500"]`, 1)
	want = strings.Replace(want, "stream = \"fullflow\"\n", "stream = \"fullflow\"\ndpi = 0\n", 1)
	assert.Equal(t, want, string(p.New))
	assert.Equal(t, "fullflow/0", p.Name)
	assert.Empty(t, p.Warnings, "a subreceiver change is applied live")

	f = editForm(t, handFile, "clickstream/0")
	f.RotateMinutes, f.RotateSeconds, f.RotateFlows = "5", "30", "1000"
	p = proposeOn(t, handFile, f)
	require.True(t, p.Errors.empty(), "%+v", p.Errors)
	want = strings.Replace(handFile, `rotate_every = "12m"`, "rotate_every = \"5m30s\"\nrotate_records = 1000", 1)
	want = strings.Replace(want, "stream = \"clickstream\"\n", "stream = \"clickstream\"\ndpi = 0\n", 1)
	assert.Equal(t, want, string(p.New))

	// A trailing comment stays with its key.
	f = editForm(t, handFile, "fullflow/0")
	f.Port = "1600"
	p = proposeOn(t, handFile, f)
	require.True(t, p.Errors.empty(), "%+v", p.Errors)
	assert.Contains(t, string(p.New), `listen = "127.0.0.1:1600"   # the DPI exports here`)
	assert.Equal(t, []string{"receiver fullflow/0 is restarted (its address, protocol, CPU or name changes): its exporters are disconnected and must reconnect"}, p.Warnings)
}

func TestAddAndRemove(t *testing.T) {
	f := receiverForm{Action: "add", Stream: "dnsflow", Proto: "udp", Host: "127.0.0.1", Port: "1101", DPI: "0",
		Mode: "RoundRobin", Subreceivers: "10.0.0.5/1101/udp", SubreceiverProto: "tcp", Auto: "Disabled"}
	p := proposeOn(t, handFile, f)
	require.True(t, p.Errors.empty(), "%+v", p.Errors)
	assert.Equal(t, "dnsflow/0", p.Name)
	want := strings.Replace(handFile, "rotate_every = \"12m\"\n", `rotate_every = "12m"

[[receiver]]
stream = "dnsflow"
dpi = 0
listen = "127.0.0.1:1101"
proto = "udp"
mode = "RoundRobin"
subreceivers = ["10.0.0.5/1101/udp"]
`, 1)
	assert.Equal(t, want, string(p.New))

	p = proposeOn(t, handFile, receiverForm{Action: "remove", Orig: "clickstream/0"})
	require.True(t, p.Errors.empty(), "%+v", p.Errors)
	want = strings.Replace(handFile, `# clickstream records
[[receiver]]
stream = "clickstream"
listen = "127.0.0.1:1501"
mode = "Recording"
[receiver.recording]
dir = "/var/dump"   # big disk
rotate_every = "12m"

`, "", 1)
	assert.Equal(t, want, string(p.New))
}

// TestBadValuesNextToTheirField: config's own checks come back on the field
// that holds the bad value.
func TestBadValuesNextToTheirField(t *testing.T) {
	f := editForm(t, handFile, "fullflow/0")
	f.Subreceivers = "10.0.0.1:1500, 10.0.0.3/34x0"
	p := proposeOn(t, handFile, f)
	assert.Equal(t, map[string]string{"subreceivers": `"10.0.0.3/34x0": bad port`}, p.Errors.Fields)
	assert.Empty(t, p.Errors.General)

	f = editForm(t, handFile, "clickstream/0")
	f.Port = "1500"
	f.Stream = "fullflow"
	p = proposeOn(t, handFile, f)
	assert.Contains(t, p.Errors.Fields["dpi"], "duplicate stream and dpi")
	assert.Contains(t, p.Errors.Fields["port"], "already used by")

	f = editForm(t, handFile, "fullflow/0")
	f.Port = "65536"
	f.Mode = "Sometimes"
	p = proposeOn(t, handFile, f)
	assert.Equal(t, `"65536": want a whole number 0..65535`, p.Errors.Fields["port"])
	assert.Contains(t, p.Errors.Fields["mode"], "want RoundRobin, All or Disabled")

	// A stream changed under a receiver numbered by position renumbers the
	// next one: refused, with what to do.
	f = editForm(t, handFile, "fullflow/0")
	f.Stream = "clickstream"
	f.Port = "1502"
	p = proposeOn(t, handFile, f)
	require.Len(t, p.Errors.General, 1)
	assert.Contains(t, p.Errors.General[0], "would renumber receiver clickstream/0 to clickstream/1")

	p = proposeOn(t, "[[receiver]]\nstream = \"fullflow\"\nlisten = \"127.0.0.1:1\"\nmode = \"Recording\"\nrecording = { dir = \"d\" }\n",
		receiverForm{Action: "remove", Orig: "fullflow/0"})
	assert.Contains(t, p.Errors.General[0], "the last receiver cannot be removed")
}

func TestDiffLines(t *testing.T) {
	a := strings.Split("a\nb\nc\nd\ne\nf\ng\nh\ni", "\n")
	b := strings.Split("a\nb\nc\nd\nE\nf\ng\nh\ni\nj", "\n")
	var got []string
	for _, d := range diffLines(a, b) {
		got = append(got, string(d.Op)+d.Text)
	}
	assert.Equal(t, []string{"@…", " b", " c", " d", "-e", "+E", " f", " g", " h", " i", "+j"}[1:], got[:10])
}

func TestWriteAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.toml")
	require.NoError(t, os.WriteFile(path, []byte("old\n"), 0o640))
	require.NoError(t, writeAtomic(path, []byte("old\n"), []byte("new\n")))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new\n", string(got))
	bak, err := os.ReadFile(path + ".bak")
	require.NoError(t, err)
	assert.Equal(t, "old\n", string(bak))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), "the file keeps its mode")
	left, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp"))
	require.NoError(t, err)
	assert.Empty(t, left, "no temporary file left")
}

// TestBalancerAutoField: "Balancer auto" Enabled writes balancer_auto = true
// (its local recorders need the dump directory, refused next to that field
// when missing), and Disabled takes the key out again.
func TestBalancerAutoField(t *testing.T) {
	f := editForm(t, handFile, "fullflow/0")
	require.Equal(t, "Disabled", f.Auto)
	f.Auto = "Enabled"
	f.Subreceivers = "127.0.0.1:9920, 10.0.0.2:1500"
	p := proposeOn(t, handFile, f)
	assert.Equal(t, map[string]string{"dir": "missing: balancer_auto records subreceivers on this host (tcp 127.0.0.1:9920) and needs a dump directory"}, p.Errors.Fields)

	f.Dir = "/var/dump"
	p = proposeOn(t, handFile, f)
	require.True(t, p.Errors.empty(), "%+v", p.Errors)
	assert.Contains(t, string(p.New), "balancer_auto = true\n")
	cfg, err := config.Parse(p.New, "new.toml")
	require.NoError(t, err)
	require.Len(t, cfg.FileReceivers(), 2)
	require.Len(t, cfg.Receivers, 3)
	assert.Equal(t, "fullflow/1000", cfg.Receivers[2].Name())
	assert.Equal(t, "fullflow/0", cfg.Receivers[2].AutoOf)

	// The form reads it back; a file with local recorders stays editable.
	back := editForm(t, string(p.New), "fullflow/0")
	assert.Equal(t, "Enabled", back.Auto)
	back.Auto = "Disabled"
	p2 := proposeOn(t, string(p.New), back)
	require.True(t, p2.Errors.empty(), "%+v", p2.Errors)
	assert.NotContains(t, string(p2.New), "balancer_auto")

	f.Auto = "Maybe"
	p = proposeOn(t, handFile, f)
	assert.Equal(t, `"Maybe": want Enabled or Disabled`, p.Errors.Fields["auto"])
}
