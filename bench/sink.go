package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// framer counts the IPFIX messages of a TCP byte stream without copying it:
// it looks at each message's header (and the ID of its first set, to tell
// data messages from template-only ones) and skips the rest. Bytes arrive in
// arbitrary pieces; a header split across reads is collected in pfx.
type framer struct {
	pfx  [ipfix.HeaderLen + 2]byte // header plus the first set's ID
	pn   int                       // bytes of pfx collected
	plen int                       // bytes of pfx needed: 16 until the length is known
	size int                       // length of the current message
	rem  int                       // bytes of the current message still to skip

	messages, data, bytes int64
}

// errFraming means the stream is not a sequence of IPFIX messages.
var errFraming = errors.New("sink: stream lost IPFIX framing")

// feed consumes one read.
func (f *framer) feed(b []byte) error {
	f.bytes += int64(len(b))
	for len(b) > 0 {
		if f.rem > 0 {
			k := min(f.rem, len(b))
			f.rem -= k
			b = b[k:]
			continue
		}
		if f.pn == 0 && len(b) >= len(f.pfx) {
			// Fast path: the whole prefix is in this read.
			size, err := f.header(b)
			if err != nil {
				return err
			}
			f.count(size, b)
			k := min(size, len(b))
			f.rem = size - k
			b = b[k:]
			continue
		}
		if f.plen == 0 {
			f.plen = ipfix.HeaderLen
		}
		k := copy(f.pfx[f.pn:f.plen], b)
		f.pn += k
		b = b[k:]
		if f.pn < f.plen {
			continue // b is empty: wait for the next read
		}
		if f.plen == ipfix.HeaderLen {
			size, err := f.header(f.pfx[:])
			if err != nil {
				return err
			}
			f.size = size
			if size >= len(f.pfx) {
				f.plen = len(f.pfx)
				continue
			}
		}
		f.count(f.size, f.pfx[:f.pn])
		f.rem = f.size - f.pn
		f.pn, f.plen = 0, 0
	}
	return nil
}

// header checks the version and returns the message length (RFC 7011 §3.1).
func (f *framer) header(b []byte) (int, error) {
	if binary.BigEndian.Uint16(b[0:2]) != ipfix.Version {
		return 0, fmt.Errorf("%w: version %d at byte %d", errFraming, binary.BigEndian.Uint16(b[0:2]), f.bytes)
	}
	size := int(binary.BigEndian.Uint16(b[2:4]))
	if size < ipfix.HeaderLen {
		return 0, fmt.Errorf("%w: message length %d", errFraming, size)
	}
	return size, nil
}

// count counts a message of size bytes whose first bytes are in pfx.
func (f *framer) count(size int, pfx []byte) {
	f.messages++
	if size >= len(f.pfx) && len(pfx) >= len(f.pfx) &&
		binary.BigEndian.Uint16(pfx[ipfix.HeaderLen:]) >= ipfix.MinDataSetID {
		f.data++
	}
}

// sinkStats is what one sink listener has received, over all its connections.
type sinkStats struct {
	Addr     string `json:"addr"`
	Conns    int64  `json:"conns"`
	Messages int64  `json:"messages"`      // all messages (raw mode: 0)
	Data     int64  `json:"data_messages"` // messages whose first set is a data set
	Bytes    int64  `json:"bytes"`
	FirstNs  int64  `json:"first_ns"` // wall clock of the first and last read
	LastNs   int64  `json:"last_ns"`
	Errors   int64  `json:"errors"` // connections closed for lost framing
}

type sink struct {
	ln  net.Listener
	raw bool

	conns, messages, data, bytes, first, last, errs atomic.Int64
}

func (s *sink) stats() sinkStats {
	return sinkStats{Addr: s.ln.Addr().String(), Conns: s.conns.Load(), Messages: s.messages.Load(),
		Data: s.data.Load(), Bytes: s.bytes.Load(), FirstNs: s.first.Load(), LastNs: s.last.Load(),
		Errors: s.errs.Load()}
}

func (s *sink) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.conns.Add(1)
		go s.read(c)
	}
}

// sinkReadBytes is the read buffer of one sink connection: large reads keep the
// sink's per-byte cost far below the balancer's.
const sinkReadBytes = 1 << 20

func (s *sink) read(c net.Conn) {
	defer c.Close()
	buf := make([]byte, sinkReadBytes)
	var f framer
	var published framer
	for {
		n, err := c.Read(buf)
		if n > 0 {
			now := time.Now().UnixNano()
			s.first.CompareAndSwap(0, now)
			s.last.Store(now)
			if s.raw {
				s.bytes.Add(int64(n))
			} else {
				if ferr := f.feed(buf[:n]); ferr != nil {
					s.errs.Add(1)
					fmt.Fprintln(os.Stderr, ferr)
					return
				}
				s.messages.Add(f.messages - published.messages)
				s.data.Add(f.data - published.data)
				s.bytes.Add(f.bytes - published.bytes)
				published = f
			}
		}
		if err != nil {
			return
		}
	}
}

// runSink is `bench sink`: it listens on -n loopback ports, prints
// {"addrs":[...]} and then answers each "stats" line on stdin with one JSON
// line of []sinkStats. A "mark" line restarts first_ns at the next read (and
// is answered like "stats"). It exits when stdin closes.
func runSink(args []string) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	n := fs.Int("n", 2, "number of sink listeners")
	raw := fs.Bool("raw", false, "count bytes only (for the relay, which cuts messages)")
	host := fs.String("host", "127.0.0.1", "address to listen on (port chosen by the kernel)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var sinks []*sink
	var addrs []string
	for range *n {
		ln, err := net.Listen("tcp", net.JoinHostPort(*host, "0"))
		if err != nil {
			return err
		}
		s := &sink{ln: ln, raw: *raw}
		sinks = append(sinks, s)
		addrs = append(addrs, ln.Addr().String())
		go s.serve()
	}
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	var mu sync.Mutex
	reply := func(v any) error {
		mu.Lock()
		defer mu.Unlock()
		if err := enc.Encode(v); err != nil {
			return err
		}
		return out.Flush()
	}
	if err := reply(map[string][]string{"addrs": addrs}); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "stats":
		case "mark":
			for _, s := range sinks {
				s.first.Store(0)
			}
		default:
			continue
		}
		st := make([]sinkStats, len(sinks))
		for i, s := range sinks {
			st[i] = s.stats()
		}
		if err := reply(st); err != nil {
			return err
		}
	}
	if err := in.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
