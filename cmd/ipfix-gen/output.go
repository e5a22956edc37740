package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"
)

// stats counts what was sent. Only the sending goroutine touches it.
type stats struct {
	messages, records, bytes, templates, reconnects int64
	seconds                                         float64
	start                                           time.Time // of sending
}

// cpuSeconds is the user and system CPU time of the process so far: on a
// shared machine, records per CPU second say more than per wall second.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func (s *stats) summary() summary {
	return summary{Messages: s.messages, Records: s.records, Bytes: s.bytes,
		Templates: s.templates, Seconds: s.seconds, Reconnects: s.reconnects}
}

// batch is a run of whole messages, contiguous in buf; ends[i] is the end
// offset of message i. records and templates are what the messages carry.
type batch struct {
	buf       []byte
	ends      []int
	records   int64
	templates int64
}

func (b *batch) reset() {
	b.buf = b.buf[:0]
	b.ends = b.ends[:0]
	b.records, b.templates = 0, 0
}

func (b *batch) empty() bool { return len(b.ends) == 0 }

// add appends the complete messages in msgs (concatenated).
func (b *batch) add(msgs []byte, templates int64) {
	for len(msgs) >= 4 {
		n := int(msgs[2])<<8 | int(msgs[3])
		b.buf = append(b.buf, msgs[:n]...)
		b.ends = append(b.ends, len(b.buf))
		msgs = msgs[n:]
	}
	b.templates += templates
}

// output sends batches. send either delivers the whole batch (and counts it
// in st) or returns an error that ends the run.
type output interface {
	send(ctx context.Context, b *batch, st *stats) error
	// maxMessage is the largest message the output takes.
	maxMessage() int
	close() error
}

func count(st *stats, b *batch) {
	st.messages += int64(len(b.ends))
	st.bytes += int64(len(b.buf))
	st.records += b.records
	st.templates += b.templates
}

// templatesFunc returns messages carrying every template (and how many
// templates), numbered for the batch about to be sent again after a TCP
// reconnect, or (resend nil) for the next message.
type templatesFunc func(resend *batch) ([]byte, int64)

// openOutput opens -out or -to. templates gives the template messages to send
// first on a new TCP connection after a reconnect.
func openOutput(ctx context.Context, o *options, templates templatesFunc) (output, error) {
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return nil, err
		}
		return &fileOutput{f: f, max: o.msgSize}, nil
	}
	network, addr, err := parseTarget(o.to)
	if err != nil {
		return nil, err
	}
	if network == "udp" {
		return newUDPOutput(addr, o.mtu)
	}
	t := &tcpOutput{addr: addr, max: o.msgSize, templates: templates}
	// The first connection is made here, so that a stream starts only once
	// someone listens; its templates are the first messages of the run.
	if err := t.dial(ctx, nil, nil); err != nil {
		return nil, err
	}
	return t, nil
}

type fileOutput struct {
	f   *os.File
	max int
}

func (f *fileOutput) maxMessage() int { return f.max }

func (f *fileOutput) send(_ context.Context, b *batch, st *stats) error {
	if _, err := f.f.Write(b.buf); err != nil {
		return err
	}
	count(st, b)
	return nil
}

func (f *fileOutput) close() error { return f.f.Close() }

// tcpOutput writes batches with one write each, reconnecting with backoff
// when the connection fails. After a reconnect the templates go first
// (RFC 7011 §8: a new session knows no templates), then the failed batch
// again: across a reconnect delivery is at least once, like a DPI's.
//
// A collector never sends on an IPFIX TCP session, so a read that returns
// means it closed or reset the connection (IPFIXcol2 does so for a message it
// refuses): the next batch goes on a new connection rather than into a socket
// nobody reads. When the run ends while the connection is broken, what was not
// delivered is an error (errBroken), never a clean exit.
type tcpOutput struct {
	addr      string
	max       int
	conn      *net.TCPConn
	templates templatesFunc
	stop      func() bool   // stops the deadline setter of the current connection
	peer      chan struct{} // closed when the collector closed or reset it
	peerErr   error         // why (nil: it closed); read after peer is closed
}

// errBroken ends a run whose connection broke before everything was sent.
var errBroken = errors.New("connection lost before everything was sent")

func (t *tcpOutput) maxMessage() int { return t.max }

const (
	tcpSendBuffer = 4 << 20
	minBackoff    = 100 * time.Millisecond
	maxBackoff    = 5 * time.Second
	// closeGrace is how long a blocked write may go on after the run ends.
	closeGrace = 2 * time.Second
)

// dial connects, retrying with backoff until ctx ends. With resend set, the
// connection replaces a lost one: the templates go first, numbered for resend.
func (t *tcpOutput) dial(ctx context.Context, resend *batch, st *stats) error {
	backoff := minBackoff
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", t.addr)
		if err == nil {
			t.conn = c.(*net.TCPConn)
			// A fixed large send buffer (capped by net.core.wmem_max) makes
			// loopback replay faster on one core than autotuning's ramp:
			// fewer sleeps and wake-ups (figures: bench/RESULTS.md, "The DPI
			// simulator").
			_ = t.conn.SetWriteBuffer(tcpSendBuffer)
			// When the run ends (signal, -duration), unblock a write to
			// a collector that stopped reading, after a grace period.
			conn := t.conn
			t.stop = context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Now().Add(closeGrace)) })
			t.watch()
			slog.Info("connected", "to", t.addr)
			if resend == nil {
				return nil
			}
			tm, n := t.templates(resend)
			if _, err = t.conn.Write(tm); err == nil {
				st.templates += n
				st.bytes += int64(len(tm))
				for b := tm; len(b) >= 4; b = b[int(b[2])<<8|int(b[3]):] {
					st.messages++
				}
				return nil
			}
			t.drop()
		}
		if ctx.Err() != nil {
			return t.endedWhileDown(ctx, resend)
		}
		slog.Warn("connect failed", "to", t.addr, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return t.endedWhileDown(ctx, resend)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// endedWhileDown is the error when the run ends before a connection is made:
// a normal end before anything was to be sent, else errBroken (the batch
// resend was not delivered).
func (t *tcpOutput) endedWhileDown(ctx context.Context, resend *batch) error {
	if resend == nil {
		return fmt.Errorf("connect %s: %w", t.addr, context.Cause(ctx))
	}
	return fmt.Errorf("%s: %w: the run ended while reconnecting, %d records not sent", t.addr, errBroken, resend.records)
}

// watch notices when the collector closes or resets the current connection.
func (t *tcpOutput) watch() {
	peer, conn := make(chan struct{}), t.conn
	t.peer = peer
	go func() {
		_, err := io.Copy(io.Discard, conn)
		t.peerErr = err
		close(peer)
	}()
}

// peerGone reports whether the collector closed the current connection.
func (t *tcpOutput) peerGone() bool {
	select {
	case <-t.peer:
		return true
	default:
		return false
	}
}

func (t *tcpOutput) drop() {
	if t.stop != nil {
		t.stop()
	}
	_ = t.conn.Close()
	t.conn = nil
}

func (t *tcpOutput) send(ctx context.Context, b *batch, st *stats) error {
	for {
		if t.conn != nil && t.peerGone() {
			slog.Warn("connection lost", "to", t.addr, "err", t.closedBy())
			t.drop()
		}
		if t.conn == nil {
			st.reconnects++
			if err := t.dial(ctx, b, st); err != nil {
				return err
			}
		}
		_, err := t.conn.Write(b.buf)
		if err == nil {
			count(st, b)
			return nil
		}
		t.drop()
		if ctx.Err() != nil {
			return fmt.Errorf("write %s: %w", t.addr, err)
		}
		slog.Warn("connection lost", "to", t.addr, "err", err)
	}
}

// closedBy says how the collector ended the current connection.
func (t *tcpOutput) closedBy() string {
	if t.peerErr != nil {
		return "reset by the collector: " + t.peerErr.Error()
	}
	return "closed by the collector"
}

// close ends the stream with a FIN after the bytes still in the socket buffer
// and waits (at most closeGrace) for the collector to close its side, as it
// does once it has read everything. A collector that closed first, or resets
// the connection, did not take everything: errBroken.
func (t *tcpOutput) close() error {
	if t.conn == nil {
		return nil
	}
	if t.stop != nil {
		t.stop()
	}
	if t.peerGone() {
		err := fmt.Errorf("%s: %w: %s before the end of the stream", t.addr, errBroken, t.closedBy())
		t.drop()
		return err
	}
	_ = t.conn.CloseWrite()
	select {
	case <-t.peer:
		if t.peerErr != nil {
			err := fmt.Errorf("%s: %w: %s", t.addr, errBroken, t.closedBy())
			t.drop()
			return err
		}
	case <-time.After(closeGrace):
		// The collector keeps its side open: the kernel delivers what is
		// left in the socket buffer after we exit.
	}
	return t.conn.Close()
}
