package balancer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// receiverConfig is a TCP receiver on a free loopback port feeding collectors.
func receiverConfig(mode config.Mode, subs ...*testenv.Collector) config.Receiver {
	cfg := config.Receiver{
		Stream:     "fullflow",
		DPI:        0,
		Listen:     netip.MustParseAddrPort("127.0.0.1:0"),
		Proto:      config.TCP,
		Mode:       mode,
		QueueBytes: 8 << 20,
		MTU:        1500,
	}
	for _, s := range subs {
		p := config.TCP
		if strings.HasPrefix(s.Network(), "udp") {
			p = config.UDP
		}
		cfg.Subreceivers = append(cfg.Subreceivers, config.Subreceiver{Addr: s.Addr(), Proto: p})
	}
	return cfg
}

// startReceiver runs a receiver until the end of the test.
func startReceiver(t testing.TB, cfg config.Receiver) *balancer.Receiver {
	t.Helper()
	r, _ := runReceiver(t, cfg, balancer.Options{ShutdownTimeout: 2 * time.Second})
	return r
}

// runReceiver runs a receiver until stop is called (once, also at the end of the
// test): stop ends Run, which drains the outputs, and checks it returned cleanly.
func runReceiver(t testing.TB, cfg config.Receiver, opts balancer.Options) (r *balancer.Receiver, stop func()) {
	t.Helper()
	r, err := balancer.New(cfg, opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Ready():
	case err := <-done:
		t.Fatalf("receiver did not start: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("receiver not ready after 5s")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wait := opts.ShutdownTimeout + 10*time.Second
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(wait):
				t.Errorf("receiver did not stop within %v", wait)
			}
			assert.NoError(t, r.Close())
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// traffic is a deterministic exporter session: a fixed-length flow template and a
// variable-length clickstream-like template, each record unique.
type traffic struct {
	messages [][]byte
	records  map[string]int // fingerprints of every data record sent
	count    int
}

var (
	flowTemplate = ipfix.NewTemplate(256, []ipfix.FieldSpecifier{
		{ID: 1, Length: 8}, {ID: 2, Length: 8}, {ID: 8, Length: 4}, {ID: 12, Length: 4},
		{ID: 7, Length: 2}, {ID: 11, Length: 2}, {ID: 4, Length: 1},
		{ID: 152, Length: 8}, {ID: 153, Length: 8},
	})
	clickTemplate = ipfix.NewTemplate(257, []ipfix.FieldSpecifier{
		{ID: 1001, Length: 4, EnterpriseNumber: ipfix.EnterpriseDPI},
		{ID: 1002, Length: ipfix.VariableLength, EnterpriseNumber: ipfix.EnterpriseDPI},
		{ID: 1005, Length: ipfix.VariableLength, EnterpriseNumber: ipfix.EnterpriseDPI},
		{ID: 2000, Length: 8, EnterpriseNumber: ipfix.EnterpriseDPI},
	})
)

// makeTraffic encodes n records (one in five clickstream) for domain odid into
// messages of at most msgSize bytes; the first message carries the templates.
func makeTraffic(t testing.TB, n int, odid uint32, msgSize int, firstID uint64) *traffic {
	t.Helper()
	tr := &traffic{records: make(map[string]int)}
	enc := ipfix.NewEncoder(odid, msgSize)
	enc.SetExportTime(1_700_000_000)
	enc.SetOutput(func(msg []byte) { tr.messages = append(tr.messages, bytes.Clone(msg)) })
	enc.AddTemplate(flowTemplate)
	enc.AddTemplate(clickTemplate)
	rec := make([]byte, 0, 256)
	for i := range n {
		id := firstID + uint64(i)
		rec = rec[:0]
		tid := flowTemplate.ID
		if i%5 == 4 {
			tid = clickTemplate.ID
			rec = ipfix.AppendUint(rec, 1_700_000_000+id%1000, 4)
			rec = ipfix.AppendVarLen(rec, []byte("login"+strconv.FormatUint(id%977, 10)))
			rec = ipfix.AppendVarLen(rec, []byte("host-"+strconv.FormatUint(id, 36)+".example.com"))
			rec = ipfix.AppendUint(rec, id, 8)
		} else {
			rec = ipfix.AppendUint(rec, id, 8)
			rec = ipfix.AppendUint(rec, id%1500, 8)
			rec = ipfix.AppendUint(rec, 0x0a000000|id%65536, 4)
			rec = ipfix.AppendUint(rec, 0x08080808, 4)
			rec = ipfix.AppendUint(rec, 1024+id%60000, 2)
			rec = ipfix.AppendUint(rec, 443, 2)
			rec = ipfix.AppendUint(rec, 6, 1)
			rec = ipfix.AppendUint(rec, 1_700_000_000_000+id, 8)
			rec = ipfix.AppendUint(rec, 1_700_000_000_500+id, 8)
		}
		require.NoError(t, enc.AppendRecord(tid, rec))
	}
	enc.Flush()
	// Fingerprint what was sent with an independent decoder.
	dec := ipfix.NewDecoder(ipfix.NewTemplateCache(0))
	for _, msg := range tr.messages {
		require.NoError(t, dec.Decode(msg, time.Now(), func(r *ipfix.Record) error {
			tr.records[testenv.Fingerprint(r)]++
			tr.count++
			return nil
		}))
	}
	require.Equal(t, n, tr.count)
	return tr
}

// stream returns all messages as one TCP byte stream.
func (tr *traffic) stream() []byte {
	var b []byte
	for _, m := range tr.messages {
		b = append(b, m...)
	}
	return b
}

// sendTCP writes the traffic to addr in chunks of chunk bytes (so messages split
// across reads) and closes the connection.
func sendTCP(t testing.TB, addr net.Addr, data []byte, chunk int) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetWriteDeadline(time.Now().Add(30*time.Second)))
	for len(data) > 0 {
		n := min(chunk, len(data))
		_, err := conn.Write(data[:n])
		require.NoError(t, err)
		data = data[n:]
	}
}

// union adds up the record multisets of collectors.
func union(cs ...*testenv.Collector) map[string]int {
	u := make(map[string]int)
	for _, c := range cs {
		for k, v := range c.Records() {
			u[k] += v
		}
	}
	return u
}

// metricValue reads one series of a receiver's metric set; 0 when absent.
func metricValue(t testing.TB, r *balancer.Receiver, series string) float64 {
	t.Helper()
	var b bytes.Buffer
	r.Metrics().WritePrometheus(&b)
	sc := bufio.NewScanner(&b)
	for sc.Scan() {
		line := sc.Text()
		if name, value, ok := strings.Cut(line, " "); ok && name == series {
			v, err := strconv.ParseFloat(value, 64)
			require.NoError(t, err)
			return v
		}
	}
	return 0
}

var _ = binary.BigEndian
