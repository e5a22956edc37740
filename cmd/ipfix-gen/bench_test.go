package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/affinity"
)

// Throughput of the binary on one core, to a sink on another:
//
//	go test ./cmd/ipfix-gen -run '^$' -bench . -benchtime 1x
//
// ipfix-gen runs under taskset -c 1, the sink is pinned to CPU 0. Besides
// wall-clock rates, each benchmark reports rates per CPU second of ipfix-gen
// (its user+system time), which on a shared machine is the steadier figure.

// pinnedSink accepts one TCP connection on loopback and reads it to the end
// on an OS thread pinned to cpu; it returns the address and a channel that
// yields the byte count.
func pinnedSink(b *testing.B, cpu int) (string, <-chan int64) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan int64, 1)
	go func() {
		runtime.LockOSThread() // stays locked even where Pin is not supported
		_ = affinity.Pin(affinity.CPUSet{cpu})
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			done <- -1
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		buf := make([]byte, 1<<20)
		var n int64
		for {
			k, err := c.Read(buf)
			n += int64(k)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					n = -1
				}
				done <- n
				return
			}
		}
	}()
	return ln.Addr().String(), done
}

var cpuRe = regexp.MustCompile(`msg=done .*cpu_seconds=([0-9.]+)`)

// benchRun runs the binary pinned to CPU 1 against a sink on CPU 0 and
// reports its rates.
func benchRun(b *testing.B, args ...string) {
	b.Helper()
	if _, err := exec.LookPath("taskset"); err != nil {
		b.Fatal("taskset not found (util-linux)")
	}
	for b.Loop() {
		addr, done := pinnedSink(b, 0)
		cmd := exec.Command("taskset", append([]string{"-c", "1", genBinary}, append(args, "-to", "tcp://"+addr)...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("%v\n%s", err, stderr.String())
		}
		var s summary
		if err := json.Unmarshal(out, &s); err != nil {
			b.Fatal(err)
		}
		select {
		case n := <-done:
			if n != s.Bytes {
				b.Fatalf("sink got %d bytes, ipfix-gen sent %d", n, s.Bytes)
			}
		case <-time.After(time.Minute):
			b.Fatal("sink did not finish")
		}
		b.ReportMetric(float64(s.Records)/s.Seconds, "records/s")
		b.ReportMetric(float64(s.Messages)/s.Seconds, "msgs/s")
		b.ReportMetric(float64(s.Bytes)/s.Seconds/1e6, "MB/s")
		if m := cpuRe.FindSubmatch(stderr.Bytes()); m != nil {
			cpu, _ := strconv.ParseFloat(string(m[1]), 64)
			if cpu > 0 {
				b.ReportMetric(float64(s.Records)/cpu, "records/cpu-s")
				b.ReportMetric(float64(s.Messages)/cpu, "msgs/cpu-s")
			}
		}
	}
}

func BenchmarkLiveTCP(b *testing.B) {
	for _, stream := range []string{"clickstream", "fullflow", "dnsflow"} {
		b.Run(stream, func(b *testing.B) {
			benchRun(b, "-stream", stream, "-records", "5000000")
		})
	}
}

func BenchmarkReplayTCP(b *testing.B) {
	path := filepath.Join(b.TempDir(), "replay.ipfix")
	// About 48000 messages of 1400 bytes (62 MB), sent 30 times.
	if out, err := exec.Command(genBinary, "-stream", "clickstream", "-records", "400000", "-out", path).CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	benchRun(b, "-replay", path, "-loops", "30")
}
