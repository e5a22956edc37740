package dpisim

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// MaxRecordLength bounds the length of one record from Next: a dst with this
// much spare capacity never grows. Records are much shorter in practice:
// about 100 to 170 bytes on average, the longest (clickstream with IPv6,
// user agent, cookie and referer) below 500.
const MaxRecordLength = 1024

// Config describes a generator. Zero fields take the defaults noted.
type Config struct {
	Stream Stream
	// Seed selects the pools and the record sequence: equal configs (and
	// equal SetNow calls) produce equal records.
	Seed int64
	// IPv6Share is the fraction of records with IPv6 addresses, 0..1.
	IPv6Share float64
	// Subscribers is the number of distinct subscribers (default 100000).
	Subscribers int
	// Hosts is the number of distinct host names (default 50000).
	Hosts int
	// Now is the clock of the records (default time.Now()); see SetNow.
	Now time.Time
}

// Generator produces the data records of one stream. It is not safe for
// concurrent use; create one per goroutine (pools are shared).
type Generator struct {
	stream  Stream
	w       *world
	r       rand.PCG
	v6      uint64 // a record is IPv6 when a random uint64 is below v6
	v6All   bool
	v4T     *ipfix.Template
	v6T     *ipfix.Template
	tmpls   []*ipfix.Template
	nowSec  uint32
	nowMs   uint64
	session uint64
}

// New returns a generator of stream with the default pool sizes, the clock
// at time.Now(), and ipv6Share of its records using IPv6 addresses.
func New(stream Stream, seed int64, ipv6Share float64) (*Generator, error) {
	return NewWithConfig(Config{Stream: stream, Seed: seed, IPv6Share: ipv6Share})
}

// NewWithConfig returns a generator for cfg.
func NewWithConfig(cfg Config) (*Generator, error) {
	if cfg.IPv6Share < 0 || cfg.IPv6Share > 1 || math.IsNaN(cfg.IPv6Share) {
		return nil, fmt.Errorf("ipv6 share %v: not in [0,1]", cfg.IPv6Share)
	}
	if cfg.Subscribers == 0 {
		cfg.Subscribers = 100_000
	}
	if cfg.Hosts == 0 {
		cfg.Hosts = 50_000
	}
	if cfg.Subscribers < 1 || cfg.Hosts < 1 || cfg.Subscribers > 1<<24 {
		return nil, fmt.Errorf("subscribers %d, hosts %d: out of range", cfg.Subscribers, cfg.Hosts)
	}
	v4T, err := template(cfg.Stream, false)
	if err != nil {
		return nil, err
	}
	v6T, err := template(cfg.Stream, true)
	if err != nil {
		return nil, err
	}
	g := &Generator{
		stream: cfg.Stream,
		w:      getWorld(uint64(cfg.Seed), cfg.Subscribers, cfg.Hosts),
		v4T:    v4T,
		v6T:    v6T,
	}
	g.r.Seed(uint64(cfg.Seed), 0x5851f42d4c957f2d)
	switch {
	case cfg.IPv6Share >= 1:
		g.v6All = true
		g.tmpls = []*ipfix.Template{v6T}
	case cfg.IPv6Share <= 0:
		g.tmpls = []*ipfix.Template{v4T}
	default:
		g.tmpls = []*ipfix.Template{v4T, v6T}
		if x := cfg.IPv6Share * (1 << 64); x >= 1<<64 { // rounds up to 1
			g.v6All = true
		} else {
			g.v6 = uint64(x)
		}
	}
	g.session = g.r.Uint64() >> 8
	now := cfg.Now
	if now.IsZero() {
		now = time.Now()
	}
	g.SetNow(now)
	return g, nil
}

// Stream returns the generator's stream.
func (g *Generator) Stream() Stream { return g.stream }

// Templates returns the templates the generator's records use: the IPv4
// one, the IPv6 one, or both, depending on the IPv6 share.
func (g *Generator) Templates() []*ipfix.Template { return g.tmpls }

// SetNow sets the clock of the following records: time stamps fall in the
// two seconds before t, flows end in the second before t. Long runs call it
// now and then (it is cheap) to follow the wall clock.
func (g *Generator) SetNow(t time.Time) {
	g.nowSec = uint32(t.Unix())
	g.nowMs = uint64(t.UnixMilli())
}

// Next appends one encoded data record to dst and returns its template id
// and dst extended by the record (append semantics: pass buf[:0] to get the
// record alone). It does not allocate when dst has MaxRecordLength bytes of
// spare capacity.
func (g *Generator) Next(dst []byte) (templateID uint16, rec []byte) {
	v6 := g.v6All || (g.v6 != 0 && g.r.Uint64() < g.v6)
	t := g.v4T
	if v6 {
		t = g.v6T
	}
	switch g.stream {
	case Clickstream:
		dst = g.clickstream(dst, v6)
	case HTTPReply:
		dst = g.httpReply(dst, v6)
	case SSLReply:
		dst = g.sslReply(dst, v6)
	case SIP:
		dst = g.sip(dst, v6)
	case FTP:
		dst = g.ftp(dst, v6)
	case IM:
		dst = g.im(dst, v6)
	case Mail:
		dst = g.mail(dst, v6)
	case Raw:
		dst = g.raw(dst, v6)
	case DNSFlow:
		dst = g.dns(dst, v6)
	case Fullflow:
		dst = g.fullflow(dst, v6)
	case NATFlow:
		dst = g.natflow(dst, v6)
	case GTPFlow:
		dst = g.gtpflow(dst, v6)
	default:
		panic("BUG: generator of unknown stream " + string(g.stream))
	}
	return t.ID, dst
}

func be16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func be32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func be64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// str appends s as a variable-length field (RFC 7011 §7: one length byte
// below 255, else 255 and a two-byte length).
func str[T string | []byte](b []byte, s T) []byte {
	if len(s) < 255 {
		b = append(b, byte(len(s)))
	} else {
		b = append(b, 255, byte(len(s)>>8), byte(len(s)))
	}
	return append(b, s...)
}

func mac(b []byte, m uint64) []byte {
	return append(b, byte(m>>40), byte(m>>32), byte(m>>24), byte(m>>16), byte(m>>8), byte(m))
}

// flow is what most records share: who talks to whom, when.
type flow struct {
	s       subscriber
	h       host
	sub     int // index of s: picks VLAN, bridge, NAT address
	ts      uint32
	session uint64
}

func (g *Generator) flow() flow {
	g.session += 1 + uint64(intn(&g.r, 64))
	sub := g.w.subs.pick.pick(&g.r)
	return flow{
		s:       g.w.subs.get(sub),
		h:       g.w.hosts.get(g.w.hosts.pick.pick(&g.r)),
		sub:     sub,
		ts:      g.nowSec - uint32(intn(&g.r, 3)),
		session: g.session,
	}
}

func subAddr(b []byte, s *subscriber, v6 bool) []byte {
	if v6 {
		return be64(be64(b, s.v6Hi), s.v6Lo)
	}
	return be32(b, s.v4)
}

func hostAddr(b []byte, h *host, v6 bool) []byte {
	if v6 {
		return be64(be64(b, h.v6Hi), h.v6Lo)
	}
	return be32(b, h.v4)
}

// head appends time stamp, login, source (subscriber) and destination
// (host) addresses, and the session id when the template has it there.
func (g *Generator) head(b []byte, f flow, v6, session bool) []byte {
	b = be32(b, f.ts)
	b = g.w.subs.appendLogin(b, &f.s)
	b = subAddr(b, &f.s, v6)
	b = hostAddr(b, &f.h, v6)
	if session {
		b = be64(b, f.session)
	}
	return b
}

func vlan(s int) uint16     { return uint16(100 + s%400) }
func postVlan(s int) uint16 { return uint16(s%7) * 500 } // 0 (untagged) for most
func bridge(s int) uint16   { return uint16(s & 3) }

// tail appends VLAN, post VLAN, source and destination MAC, MPLS labels.
func (g *Generator) tail(b []byte, f *flow) []byte {
	b = be16(b, vlan(f.sub))
	b = be16(b, postVlan(f.sub))
	b = mac(b, f.s.mac)
	b = mac(b, g.w.gatewayMACs[bridge(f.sub)])
	return str(b, g.mpls())
}

func (g *Generator) mpls() string {
	switch x := intn(&g.r, 100); {
	case x < 85:
		return g.w.mplsLabels[0]
	case x < 95:
		return g.w.mplsLabels[1]
	default:
		return g.w.mplsLabels[2]
	}
}

func (g *Generator) ephemeralPort() uint16 { return uint16(1024 + intn(&g.r, 64512)) }

// Host types of the reference: 1 HTTP, 2 CNAME, 3 SNI, 4 QUIC.
var hostTypes = newWeighted([]float64{20, 5, 60, 15})

// Methods: 1 GET, 2 POST, 3 PUT, 4 DELETE.
var methods = newWeighted([]float64{85, 12, 2, 1})

func (g *Generator) clickstream(b []byte, v6 bool) []byte {
	f := g.flow()
	w := g.w
	b = g.head(b, f, v6, false)
	b = g.w.hosts.appendName(b, &f.h)
	ht := uint8(hostTypes.pick(&g.r) + 1)
	var method uint8
	var dport uint16 = 443
	if ht == 1 {
		b = str(b, w.paths.pick(&g.r))
		b = str(b, w.referers.pick(&g.r))
		b = str(b, w.userAgents.pick(&g.r))
		b = str(b, w.cookies.pick(&g.r))
		method = uint8(methods.pick(&g.r) + 1)
		dport = 80
		if chance(&g.r, 50) {
			dport = 8080
		}
	} else {
		b = append(b, 0, 0, 0, 0) // path, referer, user agent, cookie: unknown under TLS
	}
	b = be64(b, f.session)
	var locked uint64
	if chance(&g.r, 10) {
		locked = 1
	}
	b = be64(b, locked)
	b = append(b, ht, method)
	b = be16(b, g.ephemeralPort())
	b = be16(b, dport)
	b = be16(b, bridge(f.sub))
	if ht >= 3 {
		c := &w.cipherSuites[w.tlsClients.pick(&g.r)]
		b = be16(b, c.hello)
		b = str(b, c.suites)
	} else {
		b = be16(b, 0)
		b = append(b, 0)
	}
	b = g.tail(b, &f)
	var seq uint32
	if ht != 4 { // QUIC has no TCP sequence
		seq = uint32(g.r.Uint64())
	}
	return be32(b, seq)
}

var (
	resultCodes      = []uint32{200, 304, 206, 301, 302, 204, 404, 403, 500, 502, 503, 307}
	resultCodeWeight = newWeighted([]float64{70, 8, 4, 3, 5, 3, 3, 1, 1, 0.5, 0.5, 1})
)

func (g *Generator) httpReply(b []byte, v6 bool) []byte {
	f := g.flow()
	w := g.w
	b = g.head(b, f, v6, false)
	code := resultCodes[resultCodeWeight.pick(&g.r)]
	b = be32(b, code)
	var length uint64
	ctype, loc := "", ""
	switch {
	case code == 200 || code == 206:
		length = 1 + g.r.Uint64()>>(40+intn(&g.r, 24)) // log-uniform, up to 16 MiB
		ctype = w.contentTypes.pick(&g.r)
	case code >= 300 && code < 400 && code != 304:
		loc = w.locations.pick(&g.r)
	case code >= 400:
		length = uint64(150 + intn(&g.r, 1000))
		ctype = "text/html; charset=utf-8"
	}
	b = be64(b, length)
	b = str(b, ctype)
	b = be64(b, f.session)
	b = str(b, loc)
	b = be16(b, bridge(f.sub))
	return g.tail(b, &f)
}

var (
	tls13Suites = []uint16{0x1301, 0x1302, 0x1303}
	tls12Suites = []uint16{0xc02f, 0xc030, 0xc02b, 0xc02c, 0xcca8, 0xcca9, 0x009c, 0xc013}
)

func (g *Generator) sslReply(b []byte, v6 bool) []byte {
	f := g.flow()
	b = g.head(b, f, v6, true)
	var version, suite uint16
	switch x := intn(&g.r, 100); {
	case x < 65:
		version, suite = 0x0304, tls13Suites[intn(&g.r, len(tls13Suites))]
	case x < 98:
		version, suite = 0x0303, tls12Suites[intn(&g.r, len(tls12Suites))]
	case x < 99:
		version, suite = 0x0302, 0xc014
	default:
		version, suite = 0x0301, 0x002f
	}
	b = be16(b, version)
	b = be16(b, suite)
	b = append(b, 0) // compression: null (RFC 8446 forbids any other)
	b = be16(b, bridge(f.sub))
	b = g.tail(b, &f)
	ht := uint8(3)
	if chance(&g.r, 200) {
		ht = 4
	}
	b = append(b, ht)
	return g.w.hosts.appendName(b, &f.h)
}

var (
	sipMethods     = []string{"INVITE", "REGISTER", "BYE", "ACK", "OPTIONS", "CANCEL", "SUBSCRIBE", "NOTIFY"}
	sipMethodW     = newWeighted([]float64{30, 30, 15, 10, 8, 3, 2, 2})
	sipStatus      = []uint16{0, 100, 180, 183, 200, 401, 403, 404, 486, 487, 503}
	sipStatusW     = newWeighted([]float64{50, 6, 6, 3, 22, 6, 1, 1, 2, 2, 1})
	resultOKorFail = newWeighted([]float64{90, 10})
)

func (g *Generator) sip(b []byte, v6 bool) []byte {
	f := g.flow()
	w := g.w
	b = g.head(b, f, v6, true)
	m := sipMethods[sipMethodW.pick(&g.r)]
	status := sipStatus[sipStatusW.pick(&g.r)]
	b = str(b, m)
	b = be16(b, status)
	b = str(b, w.sipURI.pick(&g.r))
	b = str(b, w.sipFrom.pick(&g.r))
	b = str(b, w.sipTo.pick(&g.r))
	b = str(b, w.sipCallID.pick(&g.r))
	b = str(b, w.sipUAgent.pick(&g.r))
	ctype := ""
	if m == "INVITE" && (status == 0 || status == 200 || status == 183) {
		ctype = "application/sdp"
	}
	b = str(b, ctype)
	b = str(b, w.sipGateways.pick(&g.r))
	return g.tail(b, &f)
}

func (g *Generator) ftp(b []byte, v6 bool) []byte {
	f := g.flow()
	w := g.w
	b = g.head(b, f, v6, true)
	b = str(b, w.ftpServer.pick(&g.r))
	b = str(b, w.ftpUser.pick(&g.r))
	b = str(b, w.ftpPassword.pick(&g.r))
	b = append(b, byte(intn(&g.r, 2))) // 0 active, 1 passive
	code := uint32(230)                // login successful
	if resultOKorFail.pick(&g.r) == 1 {
		code = 530
	}
	b = be32(b, code)
	return g.tail(b, &f)
}

// IM protocols of the reference: 0 ICQ, 7 XMPP, 106 Zello.
var (
	imProtocols = []uint8{7, 0, 106}
	imProtocolW = newWeighted([]float64{70, 10, 20})
)

func (g *Generator) im(b []byte, v6 bool) []byte {
	f := g.flow()
	w := g.w
	b = g.head(b, f, v6, true)
	b = str(b, w.imLogin.pick(&g.r))
	b = str(b, w.imPassw.pick(&g.r))
	b = str(b, w.imScreen.pick(&g.r))
	b = str(b, w.imUIN.pick(&g.r))
	b = append(b, imProtocols[imProtocolW.pick(&g.r)])
	b = str(b, w.imReceivers.pick(&g.r))
	b = be32(b, uint32(resultOKorFail.pick(&g.r)))
	return g.tail(b, &f)
}

func (g *Generator) mail(b []byte, v6 bool) []byte {
	f := g.flow()
	w := g.w
	b = g.head(b, f, v6, true)
	b = str(b, w.mailAddr.pick(&g.r))
	b = str(b, w.mailAddr.pick(&g.r))
	cc := ""
	if chance(&g.r, 200) {
		cc = w.mailAddr.pick(&g.r)
	}
	b = str(b, cc)
	b = str(b, w.mailSubject.pick(&g.r))
	b = str(b, w.mailServers.pick(&g.r))
	reply := ""
	if chance(&g.r, 100) {
		reply = w.mailAddr.pick(&g.r)
	}
	b = str(b, reply)
	b = append(b, byte(1+intn(&g.r, 2)))                     // event: 1 send, 2 receive
	b = append(b, byte(intn(&g.r, 10)/7))                    // attachment in 30 %
	b = append(b, byte(intn(&g.r, 3)))                       // 0 smtp, 1 pop3, 2 imap
	b = be32(b, []uint32{250, 250, 250, 550}[intn(&g.r, 4)]) // SMTP-style reply
	return g.tail(b, &f)
}

func (g *Generator) raw(b []byte, v6 bool) []byte {
	f := g.flow()
	w := g.w
	b = g.head(b, f, v6, true)
	b = append(b, byte(intn(&g.r, 2)), byte(intn(&g.r, 2)))
	b = be16(b, f.h.proto)
	b = be16(b, uint16(1+intn(&g.r, 40)))
	b = str(b, w.rawData.pick(&g.r))
	proto, flags := uint8(6), uint16(0x18) // TCP PSH|ACK
	if chance(&g.r, 200) {
		proto, flags = 17, 0
	}
	b = append(b, proto)
	b = be16(b, g.ephemeralPort())
	b = be16(b, []uint16{80, 443, 21, 25, 110, 143, 5222, 5060}[intn(&g.r, 8)])
	b = be16(b, flags)
	b = be32(b, uint32(g.r.Uint64()))
	return g.tail(b, &f)
}

// DNS record types (RFC 1035, RFC 3596, RFC 9460) and their shares.
const (
	rrA     = 1
	rrNS    = 2
	rrCNAME = 5
	rrMX    = 15
	rrTXT   = 16
	rrAAAA  = 28
	rrHTTPS = 65
)

var (
	rrTypes = []uint16{rrA, rrAAAA, rrHTTPS, rrCNAME, rrMX, rrTXT, rrNS}
	rrTypeW = newWeighted([]float64{55, 28, 8, 4, 2, 2, 1})
	ttls    = []uint32{20, 60, 120, 300, 600, 3600, 86400}
	ttlW    = newWeighted([]float64{5, 25, 10, 30, 10, 15, 5})
	// HTTPS record: priority 1, target ".", alpn "h2","h3".
	httpsRData = "\x00\x01\x00\x00\x01\x00\x06\x02h2\x02h3"
)

func (g *Generator) dns(b []byte, v6 bool) []byte {
	f := g.flow()
	w := g.w
	b = be32(b, f.ts)
	b = g.w.subs.appendLogin(b, &f.s)
	b = subAddr(b, &f.s, v6)
	res := intn(&g.r, len(w.resolversV4))
	if v6 {
		res %= len(w.resolversV6Hi)
		b = be64(be64(b, w.resolversV6Hi[res]), w.resolversV6Lo[res])
	} else {
		b = be32(b, w.resolversV4[res])
	}
	b = be16(b, g.ephemeralPort())
	b = be16(b, 53)
	b = be64(b, f.session)
	var transport uint8
	if chance(&g.r, 30) {
		transport = 1
	}
	b = append(b, transport)
	b = g.w.hosts.appendName(b, &f.h)
	b = be16(b, 1) // class IN
	rt := rrTypes[rrTypeW.pick(&g.r)]
	b = be16(b, rt)
	if chance(&g.r, 20) { // NXDOMAIN / no data
		b = be32(b, 0)
		b = append(b, 0)
	} else {
		ttl := ttls[ttlW.pick(&g.r)]
		b = be32(b, ttl-uint32(intn(&g.r, int(ttl)))) // what is left in the resolver cache
		switch rt {
		case rrA:
			b = be32(append(b, 4), f.h.v4)
		case rrAAAA:
			b = be64(be64(append(b, 16), f.h.v6Hi), f.h.v6Lo)
		case rrHTTPS:
			b = str(b, httpsRData)
		case rrCNAME:
			b = str(b, w.cnames.pick(&g.r))
		case rrMX:
			b = str(b, w.mx.pick(&g.r))
		case rrTXT:
			b = str(b, w.txt.pick(&g.r))
		default:
			b = str(b, w.ns.pick(&g.r))
		}
	}
	b = g.tail(b, &f)
	return be16(b, bridge(f.sub))
}

// Fullflow IP protocols and their shares: TCP, UDP, ICMP, GRE, ESP.
var (
	protocols = []uint8{6, 17, 1, 47, 50}
	protocolW = newWeighted([]float64{70, 26, 2, 1, 1})
	tcpFlags  = []uint16{0x1b, 0x18, 0x10, 0x02, 0x14, 0x19, 0x1a}
	tcpFlagW  = newWeighted([]float64{40, 25, 15, 8, 5, 4, 3})
	tosValues = []uint8{0, 0, 0, 0, 0, 0, 0x28, 0xb8, 0x48, 0x02}
	tcpPorts  = []uint16{443, 443, 443, 443, 443, 443, 443, 80, 80, 8080, 5222, 993, 22, 25}
	udpPorts  = []uint16{443, 443, 443, 53, 123, 3478, 19302, 4500, 5060, 1194}
)

// localAS is the AS number of the simulated operator (RFC 5398 documentation range).
const localAS = 64496

func (g *Generator) fullflow(b []byte, v6 bool) []byte {
	f := g.flow()
	w := g.w
	up := g.r.Uint64()&1 == 0 // subscriber -> host
	proto := protocols[protocolW.pick(&g.r)]
	// Packets are log-uniform over 1..2^17: many tiny flows, a few elephants.
	packets := 1 + g.r.Uint64()>>(47+intn(&g.r, 17))
	size := uint64(52 + intn(&g.r, 500))
	if !up {
		size = uint64(60 + intn(&g.r, 1440))
	}
	var flags uint16
	var sport, dport uint16
	switch proto {
	case 6:
		flags = tcpFlags[tcpFlagW.pick(&g.r)]
		sport, dport = g.ephemeralPort(), tcpPorts[intn(&g.r, len(tcpPorts))]
	case 17:
		sport, dport = g.ephemeralPort(), udpPorts[intn(&g.r, len(udpPorts))]
	case 1:
		dport = uint16(8 << 8) // echo request: type*256+code (RFC 7011 convention)
	}
	var (
		inIf, outIf  uint32 = 1, 2
		srcAS, dstAS        = uint32(localAS), f.h.as
	)
	if !up {
		sport, dport = dport, sport
		inIf, outIf = 2, 1
		srcAS, dstAS = dstAS, srcAS
	}
	b = be64(b, packets*size)
	b = be64(b, packets)
	b = append(b, proto, tosValues[intn(&g.r, len(tosValues))])
	b = be16(b, flags)
	b = be16(b, sport)
	if up {
		b = subAddr(b, &f.s, v6)
	} else {
		b = hostAddr(b, &f.h, v6)
	}
	b = be32(b, inIf)
	b = be16(b, dport)
	if up {
		b = hostAddr(b, &f.h, v6)
	} else {
		b = subAddr(b, &f.s, v6)
	}
	b = be32(b, outIf)
	b = be32(b, srcAS)
	b = be32(b, dstAS)
	end := g.nowMs - uint64(intn(&g.r, 1000))
	dur := uint64(intn(&g.r, int(min(packets*40, 120_000))+1))
	b = be64(b, end-dur)
	b = be64(b, end)
	// Carrier-grade NAT of IPv4 subscribers on the way out; IPv6 and
	// downstream flows carry no translation.
	switch {
	case v6:
		b = append(b, make16[:]...)
		b = be16(b, 0)
	case up:
		b = be32(b, w.cgnat[f.sub&255])
		b = be16(b, uint16(1024+(f.sub*61+int(sport))%64512))
	default:
		b = be32(b, 0)
		b = be16(b, 0)
	}
	if up {
		b = mac(b, f.s.mac)
		b = mac(b, w.gatewayMACs[bridge(f.sub)])
	} else {
		b = mac(b, w.gatewayMACs[bridge(f.sub)])
		b = mac(b, f.s.mac)
	}
	b = be16(b, vlan(f.sub))
	b = g.w.subs.appendLogin(b, &f.s)
	if chance(&g.r, 750) {
		b = g.w.hosts.appendName(b, &f.h)
	} else {
		b = append(b, 0) // flow of an unidentified host
	}
	b = be64(b, f.session)
	b = be16(b, f.h.proto)
	return be16(b, bridge(f.sub))
}

var make16 [16]byte

// natflow appends a NAT event (RFC 8158 natEvent 1 create, 2 delete) of a
// subscriber's outbound session translated to a carrier-grade NAT address.
func (g *Generator) natflow(b []byte, v6 bool) []byte {
	f := g.flow()
	proto := protocols[protocolW.pick(&g.r)]
	sport, dport := g.ephemeralPort(), tcpPorts[intn(&g.r, len(tcpPorts))]
	if proto == 17 {
		dport = udpPorts[intn(&g.r, len(udpPorts))]
	}
	b = be64(b, g.nowMs-uint64(intn(&g.r, 3000)))
	b = append(b, byte(1+intn(&g.r, 2)), proto)
	b = subAddr(b, &f.s, v6)
	b = be16(b, sport)
	b = hostAddr(b, &f.h, v6)
	b = be16(b, dport)
	b = be32(b, g.w.cgnat[f.sub&255])
	b = be16(b, uint16(1024+(f.sub*61+int(sport))%64512))
	b = be64(b, f.session)
	return g.w.subs.appendLogin(b, &f.s)
}

// gtpflow appends a GTP record: the subscriber's address with its IMSI and
// MSISDN (derived from the subscriber, so they stay the same per login).
func (g *Generator) gtpflow(b []byte, v6 bool) []byte {
	f := g.flow()
	b = be32(b, f.ts)
	b = g.w.subs.appendLogin(b, &f.s)
	b = subAddr(b, &f.s, v6)
	b = append(b, 15)
	b = appendDigits(append(b, "25099"...), uint64(f.sub), 10) // MCC 250, MNC 99
	b = append(b, 11)
	b = appendDigits(append(b, "79"...), uint64(f.sub), 9)
	return be64(b, f.session)
}
