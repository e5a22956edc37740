//go:build !linux

package balancer

import "os"

// Off Linux there are no UDP receivers (udp_other.go), so nothing to hand over.

func (r *Receiver) inherit(f *os.File, _ map[string][]byte) { _ = f.Close() }

func (r *Receiver) handOverUDP(func(handoverFrame, int) error) error { return errUDPNeedsLinux }

func (r *Receiver) releaseUDP() {}
