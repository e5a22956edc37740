package dict_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// writeDict writes <dir>/<name>/<file> with content and returns its path.
func writeDict(t testing.TB, dir, name, file, content string) string {
	t.Helper()
	d := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(d, 0o755))
	p := filepath.Join(d, file)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// loadSample loads the shipped sample.txt of name as an operator's file
// (samples themselves are never loaded).
func loadSample(t *testing.T, name string) *dict.Dict {
	t.Helper()
	b, err := dict.Sample(name)
	require.NoError(t, err)
	dir := t.TempDir()
	writeDict(t, dir, name, "operator.txt", string(b))
	d, err := dict.ReadDir(dir, name)
	require.NoError(t, err)
	return d
}

// The manual's examples (in the samples, tabs restored) load as printed there.
func TestManualExamplesLoad(t *testing.T) {
	t.Run(dict.AsnumLocal, func(t *testing.T) {
		d := loadSample(t, dict.AsnumLocal)
		assert.Equal(t, [][]string{{"12345", "LOCAL"}, {"65535", "UNKNOWN"}}, d.Rows)
		n, ok := d.ASName(65535)
		assert.True(t, ok)
		assert.Equal(t, "UNKNOWN", n)
		assert.True(t, d.HasAS(12345))
		assert.False(t, d.HasAS(12346))
	})
	t.Run(dict.SubnetsLocal, func(t *testing.T) {
		d := loadSample(t, dict.SubnetsLocal)
		require.Equal(t, 4, d.Len())
		for addr, want := range map[string]string{
			"192.168.1.0": "192.168.1.0/24", "192.168.1.255": "192.168.1.0/24",
			"10.64.66.100": "10.64.66.0/24", "172.16.0.0": "172.16.0.0/32",
			"2a02:2168:aaa:bbb::2": "2a02:2168:aaa:bbb::2/128",
			"192.168.2.0":          "", "172.16.0.1": "", "2a02:2168:aaa:bbb::3": "", "10.64.65.255": "",
			"::ffff:10.64.66.1": "10.64.66.0/24", // an IPv4-mapped address is its IPv4 address
		} {
			p, name, ok := d.Subnet(netip.MustParseAddr(addr))
			if want == "" {
				assert.False(t, ok, addr)
				continue
			}
			if assert.True(t, ok, addr) {
				assert.Equal(t, want, p.String(), addr)
				assert.Equal(t, "LOCAL", name)
			}
		}
	})
	t.Run(dict.Subscribers, func(t *testing.T) {
		d := loadSample(t, dict.Subscribers)
		require.Equal(t, 7, d.Len())
		s, ok := d.Subscriber(netip.MustParseAddr("10.64.66.105"))
		require.True(t, ok)
		assert.Equal(t, dict.Subscriber{Addr: netip.MustParseAddr("10.64.66.105"), Login: "login", SwitchID: 5,
			SwitchPort: "port2", Vendor: "unit_vendor", Cable: "cabel", Contract: "contract", Services: "services", MAC: "mac"}, s)
		_, ok = d.Subscriber(netip.MustParseAddr("10.64.66.107"))
		assert.False(t, ok)
	})
	t.Run(dict.Switches, func(t *testing.T) {
		d := loadSample(t, dict.Switches)
		require.Equal(t, 5, d.Len())
		var path []uint64
		for _, s := range d.SwitchPath(5) {
			path = append(path, s.ID)
		}
		assert.Equal(t, []uint64{5, 4, 3, 1}, path, "switch 5 hangs off 4 (port1), 4 off 3, 3 off 1, 1 is a top")
		s, ok := d.Switch(3)
		require.True(t, ok)
		assert.Equal(t, dict.Switch{ID: 3, Name: "Switch_3", Type: "Ethernet", Region: "Region_3", Address: "Address_3",
			IP: netip.MustParseAddr("10.140.3.18"), ISP: "ISP_1", UpstreamID: 1, UpstreamPort: "port1"}, s)
	})
	t.Run(dict.CRC, func(t *testing.T) {
		d := loadSample(t, dict.CRC)
		v, ok := d.CRC(5, "port_2")
		assert.True(t, ok)
		assert.Equal(t, uint64(500), v)
		_, ok = d.CRC(2, "port_2")
		assert.False(t, ok)
	})
	t.Run(dict.URLCatsHost, func(t *testing.T) {
		d := loadSample(t, dict.URLCatsHost)
		for host, want := range map[string]uint64{"vk.com": 2, "m.vk.com": 2, "WWW.YouTube.com.": 3, "example.com": 0} {
			got, ok := d.HostCategory(host)
			assert.Equal(t, want != 0, ok, host)
			assert.Equal(t, want, got, host)
		}
		c := loadSample(t, dict.URLCats)
		n, ok := c.Category(3)
		assert.True(t, ok)
		assert.Equal(t, "Video", n)
	})
	t.Run(dict.VChannelName, func(t *testing.T) {
		d := loadSample(t, dict.VChannelName)
		n, ok := d.VChannelName(20)
		assert.True(t, ok)
		assert.Equal(t, "Branch_Kazan", n)
		_, ok = d.VChannelName(21)
		assert.False(t, ok)
	})
	for _, name := range []string{dict.AsnumExclude, dict.SubnetsExclude} {
		assert.Positive(t, loadSample(t, name).Len(), name)
	}
}

// The manual as printed (PDF text) has runs of spaces where the files need
// one tab: such a file is refused at its first line, as the manual warns.
func TestManualAsPrintedRefused(t *testing.T) {
	for _, name := range []string{dict.AsnumLocal, dict.SubnetsLocal} {
		b, err := os.ReadFile(filepath.Join("testdata", "as-printed", name+".txt"))
		require.NoError(t, err)
		dir := t.TempDir()
		p := writeDict(t, dir, name, "local.txt", string(b))
		_, err = dict.ReadDir(dir, name)
		var le *dict.LineError
		require.ErrorAs(t, err, &le, name)
		assert.Equal(t, p, le.File)
		assert.Equal(t, 1, le.Line)
		assert.ErrorIs(t, err, dict.ErrColumns)
	}
}

// sample.txt and hidden or non-.txt files are never loaded; the other .txt
// files load in name order as one dictionary.
func TestDirLayout(t *testing.T) {
	dir := t.TempDir()
	b, err := dict.Sample(dict.AsnumLocal)
	require.NoError(t, err)
	writeDict(t, dir, dict.AsnumLocal, dict.SampleFile, string(b))
	writeDict(t, dir, dict.AsnumLocal, ".edit.txt", "1\tHIDDEN\n")
	writeDict(t, dir, dict.AsnumLocal, "b.txt.swp", "bad line\n")
	writeDict(t, dir, dict.AsnumLocal, "b.txt", "200\tB\r\n\n100\tB2\n")
	writeDict(t, dir, dict.AsnumLocal, "a.txt", "100\tA\n")
	d, err := dict.ReadDir(dir, dict.AsnumLocal)
	require.NoError(t, err)
	assert.Equal(t, [][]string{{"100", "A"}, {"200", "B"}, {"100", "B2"}}, d.Rows)
	n, _ := d.ASName(100)
	assert.Equal(t, "B2", n, "the later row wins")
	assert.False(t, d.HasAS(12345), "sample.txt is not loaded")
	assert.False(t, d.HasAS(1), "hidden files are not loaded")

	empty, err := dict.ReadDir(dir, dict.Subscribers) // no directory
	require.NoError(t, err)
	assert.Zero(t, empty.Len())

	require.NoError(t, dict.WriteSamples(dir))
	for _, s := range dict.Specs {
		_, err := os.Stat(filepath.Join(dir, s.Name, dict.SampleFile))
		assert.NoError(t, err, s.Name)
	}
	got, err := os.ReadFile(filepath.Join(dir, dict.AsnumLocal, dict.SampleFile))
	require.NoError(t, err)
	assert.Equal(t, b, got)
}

// A bad line refuses the dictionary with file:line.
func TestBadLines(t *testing.T) {
	f := func(name, content string, line int, want error, msg string) {
		t.Helper()
		dir := t.TempDir()
		writeDict(t, dir, name, "a.txt", "")
		p := writeDict(t, dir, name, "b.txt", content)
		_, err := dict.ReadDir(dir, name)
		var le *dict.LineError
		if !assert.ErrorAs(t, err, &le, content) {
			return
		}
		assert.Equal(t, p, le.File, content)
		assert.Equal(t, line, le.Line, content)
		assert.ErrorIs(t, err, want, content)
		assert.Contains(t, err.Error(), msg)
		assert.True(t, strings.HasPrefix(err.Error(), p+":"), err.Error())
	}
	f(dict.AsnumLocal, "12345\tLOCAL\n65535\n", 2, dict.ErrColumns, "1 tab-separated, want 2 (asnum, name)")
	f(dict.AsnumLocal, "12345\tLOCAL\textra\n", 1, dict.ErrColumns, "3 tab-separated, want 2")
	f(dict.AsnumLocal, "\n\n4294967296\tBIG\n", 3, dict.ErrValue, `column 1 (asnum): "4294967296": value out of range`)
	f(dict.AsnumLocal, "AS12345\tLOCAL\n", 1, dict.ErrValue, `"AS12345": invalid syntax`)
	f(dict.SubnetsLocal, "10.0.0.0/8\tA\n10.0.0.0/33\tB\n", 2, dict.ErrValue, "column 1 (subnet)")
	f(dict.SubnetsLocal, "10.0.0.256\tA\n", 1, dict.ErrValue, "column 1 (subnet)")
	f(dict.SubnetsLocal, "10.0.0.0 /8\tA\n", 1, dict.ErrValue, "column 1 (subnet)")
	f(dict.SubnetsExclude, "2a02:2168::/129\tA\n", 1, dict.ErrValue, "column 1 (subnet)")
	f(dict.Subscribers, "10.64.66.100\tlogin\t5\tport1\tv\tc\tk\ts\n", 1, dict.ErrColumns, "8 tab-separated, want 9")
	f(dict.Subscribers, "10.64.66.1000\tlogin\t5\tport1\tv\tc\tk\ts\tm\n", 1, dict.ErrValue, "column 1 (ip)")
	f(dict.Subscribers, "10.64.66.100\tlogin\tfive\tport1\tv\tc\tk\ts\tm\n", 1, dict.ErrValue, "column 3 (switch_id)")
	f(dict.Switches, "1\tS\tE\tR\tA\t10.140.1.18\tI\t0\t0\t\n", 1, dict.ErrColumns, "10 tab-separated, want 11")
	f(dict.Switches, "1\tS\tE\tR\tA\t10.140.1.18\tI\t2000\t0\t\t\n", 1, dict.ErrValue, "column 8 (trunk)")
	// Upstream links that loop are refused at the first row on the loop.
	f(dict.Switches, "1\tS\tE\tR\tA\t\tI\t0\t0\t\t\n2\tS\tE\tR\tA\t\tI\t0\t3\tp\t\n3\tS\tE\tR\tA\t\tI\t0\t2\tp\t\n",
		2, dict.ErrValue, "comes back")
	f(dict.CRC, "2\tport_1\t-450\n", 1, dict.ErrValue, "column 3 (crc)")
	f(dict.URLCatsHost, "\t1\n", 1, dict.ErrValue, "column 1 (host): empty")
	f(dict.VChannelName, "65536\tX\n", 1, dict.ErrValue, "column 1 (vchannel)")
}

// An unreadable file is an error that names it, not a LineError.
func TestUnreadable(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, dict.AsnumLocal, "dir.txt"), 0o755)) // not a regular file: skipped
	d, err := dict.ReadDir(dir, dict.AsnumLocal)
	require.NoError(t, err)
	assert.Zero(t, d.Len())
	_, err = dict.ReadDir(dir, "nosuch_dic")
	assert.ErrorContains(t, err, `dictionary "nosuch_dic": unknown`)
	var le *dict.LineError
	assert.False(t, errors.As(err, &le))
	_, err = dict.New(dict.Config{}, nil)
	assert.ErrorContains(t, err, "dir: empty")
}
