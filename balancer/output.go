package balancer

import "github.com/ipfix-balancer/ipfix-balancer/balancer/forward"

// output is one destination of a receiver's messages: a subreceiver
// (balancer/forward, or the UDP one here), a re-export target or the dump
// writer. All methods run on the receiver's event loop.
type output = forward.Output
