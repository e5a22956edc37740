package spool

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// benchMessages returns 1024 data messages of about 1350 bytes (110 records),
// the size the DPI sends, after the templates of both domains.
func benchMessages() [][]byte {
	return makeStream(1024, 0, 110).msgs
}

// BenchmarkWrite compares, in one run, the spool's write path (Append on the
// caller, the writer goroutine writing segments) with the recording path's
// pattern (balancer/recording.go): recording_writer is its writer loop alone
// on the caller's goroutine (ipfix.FileWriter into a buffer written to the
// dump in 256 KiB writes), recording_queue adds the copy into the writer
// queue and the hand-over to a writer goroutine, as the recorder does. All
// are timed from the first message to the last one written to the file.
func BenchmarkWrite(b *testing.B) {
	msgs := benchMessages()
	size := 0
	for _, m := range msgs {
		size += len(m)
	}
	b.Run("recording_writer", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "x.ipfix.part"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cache := ipfix.NewTemplateCache(0)
		var buf dumpBuffer
		fw := ipfix.NewFileWriter(&buf, cache)
		b.SetBytes(int64(size / len(msgs)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := msgs[i%len(msgs)]
			i++
			if i <= 2 {
				_, _ = cache.Learn(m, time.Time{})
			}
			_ = fw.WriteChecked(m, i > 2)
			if len(buf.b) >= 256<<10 {
				if _, err := f.Write(buf.b); err != nil {
					b.Fatal(err)
				}
				buf.b = buf.b[:0]
			}
		}
		if _, err := f.Write(buf.b); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("recording_queue", func(b *testing.B) {
		// The whole recording path: the event loop copies each message into
		// the writer queue (balancer/recording.go's chunks, here one buffer
		// swapped under a mutex), the writer goroutine writes it through
		// ipfix.FileWriter in 256 KiB writes.
		f, err := os.Create(filepath.Join(b.TempDir(), "x.ipfix.part"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		var (
			mu      sync.Mutex
			queue   []byte
			queued  int
			written atomic.Int64
			wake    = make(chan struct{}, 1)
			quit    = make(chan struct{})
			done    = make(chan struct{})
		)
		go func() {
			defer close(done)
			cache := ipfix.NewTemplateCache(0)
			var buf dumpBuffer
			fw := ipfix.NewFileWriter(&buf, cache)
			var batch []byte
			n := 0
			for {
				select {
				case <-wake:
				case <-quit:
					return
				}
				mu.Lock()
				batch, queue = queue, batch[:0]
				k := queued
				queued = 0
				mu.Unlock()
				for p := batch; len(p) > 0; {
					l := int(binary.BigEndian.Uint16(p[2:4]))
					n++
					if n <= 2 {
						_, _ = cache.Learn(p[:l], time.Time{})
					}
					_ = fw.WriteChecked(p[:l], n > 2)
					if len(buf.b) >= 256<<10 {
						if _, err := f.Write(buf.b); err != nil {
							panic(err)
						}
						buf.b = buf.b[:0]
					}
					p = p[l:]
				}
				if _, err := f.Write(buf.b); err != nil {
					panic(err)
				}
				buf.b = buf.b[:0]
				written.Add(int64(k))
			}
		}()
		b.SetBytes(int64(size / len(msgs)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := msgs[i%len(msgs)]
			i++
			for {
				mu.Lock()
				if len(queue)+len(m) <= 8<<20 {
					queue = append(queue, m...)
					queued++
					mu.Unlock()
					break
				}
				mu.Unlock()
				runtime.Gosched() // the benchmark wants every message on disk
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		}
		deadline := time.Now().Add(time.Minute)
		for written.Load() < int64(i) && time.Now().Before(deadline) {
			select {
			case wake <- struct{}{}:
			default:
			}
			time.Sleep(100 * time.Microsecond)
		}
		close(quit)
		<-done
		if written.Load() != int64(i) {
			b.Fatalf("written %d of %d", written.Load(), i)
		}
	})
	b.Run("spool", func(b *testing.B) {
		s, err := New(Config{Dir: b.TempDir()}, labels, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Run()
		defer s.Close()
		b.SetBytes(int64(size / len(msgs)))
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := msgs[i%len(msgs)]
			i++
			for !s.Append(m) {
				runtime.Gosched() // the benchmark wants every message on disk
			}
		}
		deadline := time.Now().Add(time.Minute)
		for s.written() < int64(i) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
		if s.written() != int64(i) {
			b.Fatalf("written %d of %d", s.written(), i)
		}
	})
}

// BenchmarkReplay measures replay from disk: Next and Ack (every 64
// messages) of a spool holding b.N messages.
func BenchmarkReplay(b *testing.B) {
	msgs := benchMessages()
	size := 0
	for _, m := range msgs {
		size += len(m)
	}
	s, err := New(Config{Dir: b.TempDir(), BufferBytes: 64 << 20}, labels, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	s.Run()
	defer s.Close()
	n := 0
	b.SetBytes(int64(size / len(msgs)))
	b.ReportAllocs()
	got := 0
	var last Message
	for b.Loop() {
		// Keep the spool fed: the writer runs ahead of the reader.
		for n-got < 4096 {
			for !s.Append(msgs[n%len(msgs)]) {
				runtime.Gosched()
			}
			n++
		}
		for {
			m, ok := s.Next()
			if ok {
				last = m
				if !m.Templates {
					got++
					if got%64 == 0 {
						s.Ack(last)
					}
					break
				}
				continue
			}
			runtime.Gosched()
		}
	}
	s.Ack(last)
}

type dumpBuffer struct{ b []byte }

func (w *dumpBuffer) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
