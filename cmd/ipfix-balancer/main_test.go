package main_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

var binary string

// TestMain builds the daemon once; the tests run it as a real process.
func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithBinary(m, &binary, "ipfix-balancer", "."))
}

// startDaemon runs the daemon on config (testenv.Daemon: restarts, logs, PIDs).
func startDaemon(t *testing.T, config string) *testenv.Daemon {
	t.Helper()
	return testenv.StartDaemon(t, binary, "-config", config)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeConfig writes a configuration of one fullflow receiver in mode to subs,
// with metrics on metricsAddr and the hand-over on control, as the shipped files
// have them, atomically (a reload never reads half of it).
func writeConfig(t *testing.T, path, mode, metricsAddr string, listen int, control string, subs ...*testenv.Collector) {
	t.Helper()
	var quoted []string
	for _, c := range subs {
		quoted = append(quoted, strconv.Quote(c.Addr()))
	}
	cfg := fmt.Sprintf(`
[metrics]
listen = %q
[balancer]
control_socket = %q
shutdown_timeout = "5s"
stats_every = "0s"

[[receiver]]
stream = "fullflow"
listen = "127.0.0.1:%d"
mode = %q
subreceivers = [%s]
queue_bytes = 67108864
`, metricsAddr, control, listen, mode, strings.Join(quoted, ", "))
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(cfg), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// The exporter streams at ≥ 100 k msg/s while the configuration is reloaded 20
// times (subreceivers added and removed) and the daemon restarted 5 times: its
// connection never drops and the collectors together get every record exactly once.
func TestReloadAndRestartLoseNothing(t *testing.T) {
	dir := t.TempDir()
	var pool []*testenv.Collector
	for range 4 {
		pool = append(pool, testenv.StartCollector(t, "tcp", testenv.CountByID()))
	}
	port, metricsAddr := freePort(t), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	control := filepath.Join(dir, "control.sock")
	config := filepath.Join(dir, "balancer.toml")
	writeConfig(t, config, "RoundRobin", metricsAddr, port, control, pool[:2]...)
	d := startDaemon(t, config)

	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	require.NoError(t, err)
	defer conn.Close()

	// Exporter: messages of 2 records numbered 1, 2, 3…, paced to 100 k msg/s.
	stopSending := make(chan struct{})
	var sendErr error
	var messages int
	var total uint64
	start := time.Now()
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		messages, total, sendErr = export(conn, stopSending)
	}()

	time.Sleep(200 * time.Millisecond)
	for i := range 20 {
		// Rotate through subsets of the pool: always at least one subreceiver.
		subs := []*testenv.Collector{pool[i%4], pool[(i+1)%4]}
		if i%3 == 0 {
			subs = append(subs, pool[(i+2)%4])
		}
		writeConfig(t, config, "RoundRobin", metricsAddr, port, control, subs...)
		d.Signal(syscall.SIGHUP)
		d.WaitLog("configuration reloaded", i+1)
		time.Sleep(50 * time.Millisecond)
	}
	for range 5 {
		d.Restart()
		time.Sleep(200 * time.Millisecond)
	}
	close(stopSending)
	<-sendDone
	require.NoError(t, sendErr, "the exporter's connection must never drop")

	elapsed := time.Since(start)
	rate := float64(messages) / elapsed.Seconds()
	assert.GreaterOrEqual(t, rate, 95_000.0, "the exporter must stream at about 100 k msg/s")
	require.Eventually(t, func() bool {
		got := 0
		for _, c := range pool {
			got += c.Stats().Records
		}
		return uint64(got) >= total
	}, 30*time.Second, 20*time.Millisecond, "collectors got fewer records than sent")
	counts := make([]int, total+1)
	for _, c := range pool {
		for id, n := range c.IDCounts() {
			if n > 0 {
				require.LessOrEqual(t, uint64(id), total, "record id never sent")
				counts[id] += int(n)
			}
		}
		assert.Zero(t, c.Stats().Undecoded, "collector %s could not decode some data", c.Addr())
	}
	var missing, duplicated int
	for id := uint64(1); id <= total; id++ {
		switch {
		case counts[id] == 0:
			missing++
		case counts[id] > 1:
			duplicated++
		}
	}
	assert.Zero(t, missing, "records lost")
	assert.Zero(t, duplicated, "records duplicated")
	t.Logf("sent %d messages (%.0f msg/s), %d records, through 20 reloads and 5 restarts", messages, rate, total)
	if testing.Verbose() {
		t.Logf("daemon log:\n%s", d.Log())
	}
}

// export writes messages of two records, numbered from 1, until stop, paced at
// about 100 k msg/s. It returns the messages and records sent.
func export(conn net.Conn, stop <-chan struct{}) (int, uint64, error) {
	tmpl := ipfix.NewTemplate(256, []ipfix.FieldSpecifier{
		{ID: 1, Length: 8}, {ID: 8, Length: 4}, {ID: 12, Length: 4}, {ID: 7, Length: 2}, {ID: 11, Length: 2},
		{ID: 1002, Length: ipfix.VariableLength, EnterpriseNumber: ipfix.EnterpriseDPI},
	})
	var batch []byte
	messages := 0
	enc := ipfix.NewEncoder(1, 100) // two records per message
	enc.SetOutput(func(m []byte) { batch = append(batch, m...); messages++ })
	enc.AddTemplate(tmpl)
	rec := make([]byte, 0, 64)
	const perTick = 1000 // messages per 10 ms = 100 k msg/s
	id := uint64(0)
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	for tick := 1; time.Now().Before(deadline); tick++ {
		select {
		case <-stop:
			return messages, id, nil
		default:
		}
		// Catch up with the schedule rather than drift below the rate.
		if wait := time.Until(start.Add(time.Duration(tick) * 10 * time.Millisecond)); wait > 0 {
			time.Sleep(wait)
		}
		batch = batch[:0]
		for target := messages + perTick; messages < target; {
			id++
			rec = ipfix.AppendUint(rec[:0], id, 8)
			rec = ipfix.AppendUint(rec, 0x0a000000|id&0xffff, 4)
			rec = ipfix.AppendUint(rec, 0x08080808, 4)
			rec = ipfix.AppendUint(rec, 1024+id%60000, 2)
			rec = ipfix.AppendUint(rec, 443, 2)
			rec = ipfix.AppendVarLen(rec, []byte("login"+strconv.FormatUint(id%1000, 10)))
			if err := enc.AppendRecord(256, rec); err != nil {
				return messages, id, err
			}
		}
		enc.Flush()
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(batch); err != nil {
			return messages, id, err
		}
	}
	return messages, id, io.ErrUnexpectedEOF
}
