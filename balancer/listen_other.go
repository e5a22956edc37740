//go:build !linux

package balancer

import "time"

// refuseConnections is a no-op where socket filters are not available: the
// listener accepts until the engine stops, and a connection accepted while the
// receiver stops is closed at once (see OnOpen).
func refuseConnections(int, time.Duration) error { return nil }
