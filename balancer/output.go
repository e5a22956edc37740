package balancer

// output is one destination of a receiver's messages: a subreceiver, a re-export
// target or the dump writer. All methods run on the receiver's event loop.
type output interface {
	// available reports whether RoundRobin may pick this output now.
	available() bool
	// send queues msg for the current batch. msg is valid only until flush returns;
	// records is the number of data records it carries (for sequence numbers).
	send(msg []byte, odid uint32, records int)
	// flush ends the batch: one write per output per read from the exporter.
	flush()
	// start begins connecting (outputs that dial) once the loop runs.
	start()
	// pendingBytes is what waits to be written (queue and socket user-space buffer).
	pendingBytes() int
	// stop releases the output; called on the loop at shutdown.
	stop()
	name() string
}
