package forward

// Message is one message a receiver hands its outputs, with what its one scan
// found, so that no output walks its sets again. The receiver keeps one value
// and passes a pointer to it: handing a message on allocates nothing.
type Message struct {
	// Bytes is the whole message, header included. It belongs to the receiver
	// (a slice of the exporter's read buffer): valid until the output's Flush
	// returns, so an output that keeps it longer copies it.
	Bytes []byte
	// ODID is its observation domain.
	ODID uint32
	// Records is its data records, which advance the domain's sequence number.
	Records int
	// Data and Templates tell whether it carries a data set, a template set.
	Data, Templates bool
	// MadeUp marks a template message the balancer made up (re-priming,
	// withdrawals): it is not the exporter's, and neither counted as sent nor
	// as dropped.
	MadeUp bool
	// headerFree is the numbering token: see TakeHeader.
	headerFree bool
}

// FreeHeader gives the numbering token to the message: the first output that
// takes it (TakeHeader) may number the header in place, as no output holds a
// reference to it yet and the read buffer is the receiver's until the read is
// consumed. The others copy the header unless the number already there is
// theirs too (All mode with every subreceiver keeping up).
func (m *Message) FreeHeader(free bool) { m.headerFree = free }

// TakeHeader reports whether the caller may number the header in place, and
// takes the token: it is true once per FreeHeader(true).
func (m *Message) TakeHeader() bool {
	free := m.headerFree
	m.headerFree = false
	return free
}

// Host is what a subreceiver needs of its receiver.
type Host interface {
	// AppendTemplates appends messages carrying every current template of
	// every live session, numbered with seq, each at most maxSize bytes, never
	// stamped later than follow, the first export time per domain of what the
	// output has queued behind them (nil: nothing). Event loop only.
	AppendTemplates(dst []byte, seq *Sequencer, maxSize int, follow map[uint32]uint32) []byte
	// OnLoop runs fn on the receiver's event loop.
	OnLoop(fn func())
	// ReplayBringsTemplates reports whether a new connection with nothing
	// queued gets its templates from the receiver's spool replay (a
	// RoundRobin receiver's spool that replays or waits for its
	// predecessor's): current templates sent first, stamped later than the
	// replayed data, would put the connection's export time in history.
	// Event loop only.
	ReplayBringsTemplates() bool
}

// Output is one destination of a receiver's messages: a subreceiver, a
// re-export target or the dump writer. All methods run on the receiver's event
// loop.
type Output interface {
	// Available reports whether RoundRobin may pick this output now.
	Available() bool
	// Send queues m for the current batch; m.Bytes is valid only until Flush
	// returns.
	Send(m *Message)
	// Flush ends the batch: one write per output per read from the exporter.
	Flush()
	// Start begins connecting (outputs that dial) once the loop runs.
	Start()
	// PendingBytes is what waits to be written (queue and socket user-space
	// buffer).
	PendingBytes() int
	// Stop releases the output; called on the loop at shutdown.
	Stop()
	Name() string
}
