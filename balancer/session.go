package balancer

import (
	"net/netip"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// session is one exporter transport session: a TCP connection from the DPI, or the
// datagrams from one UDP source address. It owns the exporter's templates (RFC 7011
// §8: templates are scoped to the session) and its sequence tracking. Event loop only.
type session struct {
	remote    netip.AddrPort
	templates *ipfix.TemplateCache
	seq       ipfix.SequenceTracker
	// clock is the exporter's export time per domain: what the messages we make
	// up for this session carry (see exportTime).
	clock ipfix.ExportClock
	// carry holds the start of a message split across reads. gnet's own buffer
	// would keep it too, but Peek then copies every following read whole; owning
	// the tail keeps reads zero-copy and is what a restart hands over.
	carry    []byte
	spare    []byte // the carry's other buffer (see completeCarry)
	lastSeen time.Time
	since    time.Time // when the session opened (console status)
	// adopted holds the templates of a session handed over by the predecessor
	// until the loop registers it; passed marks one handed on to a successor.
	adopted []byte
	passed  bool
	// passing is set while a hand-over waits to pass the session from its next
	// OnTraffic (see handOverSessions); passResult then gets the outcome.
	passing    bool
	passResult chan<- error
	// down maps (domain, template id) to the id downstream, up the other way
	// for the remapped ones, remapped counting those (see templateIDs).
	down     map[uint64]downID
	up       map[uint64]uint16
	remapped int
}

// exportTime is the export time of a message the balancer makes up for domain
// odid of s (every template sent again on a subreceiver's new connection, to a
// subreceiver added by a reload or a successor process, the periodic UDP
// refresh): the exporter's own clock, never later than follow[odid], the first
// of that domain's messages queued behind it (follow may be nil); ours only
// before s has sent anything. A collector orders a session by export time, and
// IPFIXcol2 closes a TCP session on which it goes back (ipfix.ExportClock).
func (s *session) exportTime(odid uint32, now time.Time, follow map[uint32]uint32) uint32 {
	return s.clock.Stamp(odid, now, follow)
}

func newSession(remote netip.AddrPort, templateLifetime time.Duration) *session {
	return &session{remote: remote, templates: ipfix.NewTemplateCache(templateLifetime), since: time.Now()}
}
