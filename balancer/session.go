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
	// carry holds the start of a message split across reads. gnet's own buffer
	// would keep it too, but Peek then copies every following read whole; owning
	// the tail keeps reads zero-copy and is what a restart hands over.
	carry    []byte
	spare    []byte // the carry's other buffer (see completeCarry)
	lastSeen time.Time
	// adopted holds the templates of a session handed over by the predecessor
	// until the loop registers it; passed marks one handed on to a successor.
	adopted []byte
	passed  bool
}

func newSession(remote netip.AddrPort, templateLifetime time.Duration) *session {
	return &session{remote: remote, templates: ipfix.NewTemplateCache(templateLifetime)}
}
