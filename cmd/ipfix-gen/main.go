// Command ipfix-gen simulates a DPI exporting IPFIX (RFC 7011): it generates
// realistic records of one stream with the DPI's templates (package
// dpisim) and sends them over TCP or UDP or writes an IPFIX file (RFC
// 5655); or it replays the messages of an IPFIX file, ours or any
// exporter's.
//
//	ipfix-gen -stream clickstream -records 1000000 -to tcp://127.0.0.1:1501
//	ipfix-gen -stream fullflow -duration 1m -rate 50000 -ipv6-share 0.2 -to udp://127.0.0.1:1500
//	ipfix-gen -stream dnsflow -records 100000 -out dns.ipfix
//	ipfix-gen -replay dns.ipfix -loops 100 [-rate MSGS] -to tcp://127.0.0.1:1500
//
// Generation needs a bound: -records, -duration or both (whichever comes
// first). Replay sends the file -loops times (and stops at -duration if
// given); sequence numbers go on across loops. Messages are at most -msg-size
// bytes (default 1400, up to 65535); over UDP one message per datagram, at
// most -mtu minus 28 bytes (48 for IPv6), and replay splits larger messages
// at record boundaries. Templates come first; over UDP they are re-sent
// every -template-every (default 10s); over TCP a lost connection is
// re-dialled with backoff (100 ms to 5 s) and the new session gets the
// templates before the data that was in flight (at least once); a run that
// ends while its connection is broken, or whose collector closed the connection
// before the end, exits 1. Replay keeps the file's export times (going on from
// loop to loop) and gives them to the template messages it makes up. SIGINT or
// SIGTERM stops the run cleanly.
//
// At the end ipfix-gen prints exactly one JSON line on stdout:
//
//	{"messages":…,"records":…,"bytes":…,"templates":…,"seconds":…,"reconnects":…}
//
// messages and bytes count everything sent, template messages included;
// templates counts template records; seconds excludes start-up (pools, file
// loading). Logs go to stderr (log/slog), with a progress line every
// -progress-every (5s) and the CPU time used at the end.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/dpisim"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

var version = "dev"

// options are the parsed command line.
type options struct {
	stream        dpisim.Stream
	records       int64
	duration      time.Duration
	rate          float64
	seed          int64
	odid          uint32
	msgSize       int
	ipv6Share     float64
	templateEvery time.Duration
	mtu           int
	subscribers   int
	hosts         int
	out           string
	to            string
	replay        string
	loops         int64
	progressEvery time.Duration
}

// summary is the one JSON line printed on stdout at the end.
type summary struct {
	Messages   int64   `json:"messages"`
	Records    int64   `json:"records"`
	Bytes      int64   `json:"bytes"`
	Templates  int64   `json:"templates"`
	Seconds    float64 `json:"seconds"`
	Reconnects int64   `json:"reconnects"`
}

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipfix-gen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, opts)
	out, jerr := json.Marshal(sum)
	if jerr != nil {
		panic("BUG: " + jerr.Error())
	}
	fmt.Println(string(out))
	if err != nil {
		slog.Error("stopped", "err", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("ipfix-gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var stream string
	var odid uint
	fs.StringVar(&stream, "stream", "", "stream to generate: fullflow|clickstream|dnsflow|http_reply|ssl_reply|sip|ftp|im|mail|raw")
	fs.Int64Var(&o.records, "records", 0, "stop after this many records (0 = no bound)")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0 = no bound)")
	fs.Float64Var(&o.rate, "rate", 0, "records/s when generating, messages/s when replaying (0 = as fast as possible)")
	fs.Int64Var(&o.seed, "seed", 1, "seed of the generator (same seed, same records)")
	fs.UintVar(&odid, "odid", 1, "observation domain id of generated messages")
	fs.IntVar(&o.msgSize, "msg-size", 1400, "generation: maximum message size in bytes (512..65535)")
	fs.Float64Var(&o.ipv6Share, "ipv6-share", 0, "fraction of records with IPv6 addresses, 0..1")
	fs.DurationVar(&o.templateEvery, "template-every", 10*time.Second, "UDP: re-send templates this often (RFC 7011 §8.4)")
	fs.IntVar(&o.mtu, "mtu", 1500, "UDP: path MTU; datagrams are at most MTU minus IP and UDP headers (replay splits larger messages)")
	fs.IntVar(&o.subscribers, "subscribers", 100_000, "number of distinct subscribers")
	fs.IntVar(&o.hosts, "hosts", 50_000, "number of distinct host names")
	fs.StringVar(&o.out, "out", "", "write an IPFIX file (RFC 5655)")
	fs.StringVar(&o.to, "to", "", "send to tcp://HOST:PORT or udp://HOST:PORT")
	fs.StringVar(&o.replay, "replay", "", "replay the messages of this IPFIX file instead of generating")
	fs.Int64Var(&o.loops, "loops", 1, "replay: send the file this many times")
	fs.DurationVar(&o.progressEvery, "progress-every", 5*time.Second, "log progress this often (0 = never)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage:
  ipfix-gen -stream S (-records N | -duration D) [options] (-out FILE | -to tcp://H:P | -to udp://H:P)
  ipfix-gen -replay FILE [-loops N] [-rate MSGS] (-to tcp://H:P | -to udp://H:P | -out FILE)

Prints one JSON summary line on stdout; logs go to stderr.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *showVersion {
		fmt.Fprintln(stderr, "ipfix-gen", version)
		return nil, flag.ErrHelp
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.stream = dpisim.Stream(stream)
	o.odid = uint32(odid)
	if (o.out == "") == (o.to == "") {
		return nil, errors.New("need exactly one of -out FILE and -to URL")
	}
	if o.to != "" {
		network, _, err := parseTarget(o.to)
		if err != nil {
			return nil, err
		}
		if network == "udp" && maxDatagram(o.mtu, true) < minMsgSize {
			return nil, fmt.Errorf("-mtu %d: at least %d", o.mtu, minMsgSize+48)
		}
	}
	if o.msgSize < minMsgSize {
		return nil, fmt.Errorf("-msg-size %d: at least %d", o.msgSize, minMsgSize)
	}
	if o.msgSize > ipfix.MaxMessageLen {
		return nil, fmt.Errorf("-msg-size %d: at most %d", o.msgSize, ipfix.MaxMessageLen)
	}
	if o.rate < 0 {
		return nil, fmt.Errorf("-rate %v: negative", o.rate)
	}
	if o.records < 0 || o.duration < 0 {
		return nil, errors.New("-records and -duration must not be negative")
	}
	if o.replay != "" {
		if stream != "" {
			return nil, errors.New("-stream and -replay exclude each other")
		}
		if o.loops < 1 {
			return nil, fmt.Errorf("-loops %d: at least 1", o.loops)
		}
		if o.records != 0 {
			return nil, errors.New("-records applies to generation; bound a replay with -loops or -duration")
		}
		return o, nil
	}
	if stream == "" {
		return nil, errors.New("need -stream (or -replay)")
	}
	if !slices.Contains(dpisim.Streams(), o.stream) {
		var names []string
		for _, s := range dpisim.Streams() {
			names = append(names, string(s))
		}
		return nil, fmt.Errorf("-stream: unknown stream %q (want %s)", stream, strings.Join(names, ", "))
	}
	if o.records == 0 && o.duration == 0 {
		return nil, errors.New("need -records or -duration (or both): a bound on the run")
	}
	if o.ipv6Share < 0 || o.ipv6Share > 1 {
		return nil, fmt.Errorf("-ipv6-share %v: not in [0,1]", o.ipv6Share)
	}
	return o, nil
}

// minMsgSize is the smallest -msg-size (and UDP datagram): generated records
// are below 500 bytes.
const minMsgSize = 512

// parseTarget splits tcp://host:port or udp://host:port.
func parseTarget(s string) (network, addr string, err error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "tcp" && u.Scheme != "udp") || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return "", "", fmt.Errorf("-to %q: want tcp://HOST:PORT or udp://HOST:PORT (a file: -out FILE)", s)
	}
	return u.Scheme, u.Host, nil
}

// maxDatagram is the largest UDP payload for a path MTU: minus the IPv4 (20)
// or IPv6 (40) header and the UDP header (8).
func maxDatagram(mtu int, ipv6 bool) int {
	n := mtu - 28
	if ipv6 {
		n = mtu - 48
	}
	return min(n, 65507)
}

func run(ctx context.Context, o *options) (summary, error) {
	var st stats
	start := time.Now()
	var err error
	if o.replay != "" {
		err = runReplay(ctx, o, &st)
	} else {
		err = runLive(ctx, o, &st)
	}
	if !st.start.IsZero() {
		start = st.start // setup (pools, loading a file) is not part of the run
	}
	st.seconds = time.Since(start).Seconds()
	return st.summary(), err
}
