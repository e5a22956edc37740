package forward

import (
	"net/netip"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// Session is the exporter session that sent the message a UDP subreceiver is
// given, as it needs it to re-pack the message at record boundaries and to
// prime a collector with the session's templates: its templates under the IDs
// the receiver forwards them with (downstream).
type Session interface {
	// Lookup is the template of domain odid whose downstream ID is id.
	ipfix.TemplateLookup
	// AppendTemplateMessages appends messages holding every current template of
	// domain odid, downstream IDs, stamped with the session's export time at
	// now, numbered seq, each at most maxSize bytes.
	AppendTemplateMessages(dst []byte, odid, seq uint32, maxSize int, now time.Time) []byte
}

// UDPHost is what a UDP subreceiver needs of its receiver beyond Host.
type UDPHost interface {
	Host
	// Sender is the session whose message is being sent; nil when none.
	Sender() Session
	// AppendDomains appends the observation domains of every live session.
	AppendDomains(dst []uint32) []uint32
	// CountParseError counts a message the re-packing found malformed.
	CountParseError(err error)
	// Now is the receiver's clock (export times).
	Now() time.Time
}

const (
	// udpSendBatch is the most datagrams one sendmmsg takes (UIO_MAXIOV).
	udpSendBatch = 1024
	// udpArenaBytes bounds the re-packed copies of one batch before it is sent early.
	udpArenaBytes = 512 << 10
	// templateResend is how often a UDP subreceiver gets every current template
	// again: RFC 7011 §8.4 has UDP exporters resend templates periodically, since
	// a collector that restarted or lost the datagram has no other way to learn them.
	templateResend = 10 * time.Second
	// udpProbeUp is how long a UDP subreceiver must take datagrams without an ICMP
	// "port unreachable" (ECONNREFUSED) before it counts as up again.
	udpProbeUp      = time.Second
	ipv4UDPOverhead = 20 + 8
	ipv6UDPOverhead = 40 + 8
	minUDPPayload   = 512
)

// udpPayload is the largest message that fits one datagram of mtu bytes to to.
func udpPayload(to netip.AddrPort, mtu int) int {
	if mtu <= 0 {
		mtu = 1500
	}
	payload := mtu - ipv4UDPOverhead
	if to.Addr().Is6() {
		payload = mtu - ipv6UDPOverhead
	}
	return min(max(payload, minUDPPayload), ipfix.MaxMessageLen-ipv4UDPOverhead)
}
