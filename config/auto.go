package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Local recorders of balancer_auto. A receiver with balancer_auto = true
// (the legacy BALANCER_AUTO=Enabled) has its subreceivers that live on this
// host (a loopback address, "localhost", or an address of one of this
// host's interfaces) started as ordinary Recording receivers of this
// process: listening on the subreceiver's address and protocol, writing
// dumps to the parent's recording dir. The recorder of subreceivers[k] of
// stream S, dpi D is named S/(1000*(k+1)+D): fullflow/0 with two local
// subreceivers records as fullflow/1000 and fullflow/2000 (dumps
// fullflow_1000_..., fullflow_2000_...; the loader's dpi column keeps D as
// dpi % 1000). Subreceivers on other hosts are left alone.
const (
	autoDPIStep = 1000
	// maxAutoSubs keeps 1000*(k+1)+D within maxDPI.
	maxAutoSubs = maxDPI/autoDPIStep - 1
)

// AutoDPI is the dpi of the local recorder of subreceivers[k] of a
// receiver of dpi dpi.
func AutoDPI(dpi, k int) int { return autoDPIStep*(k+1) + dpi }

// isLocal reports whether addr is one of this host's addresses. A variable
// for tests.
var isLocal = func(addr netip.Addr) bool {
	addr = addr.Unmap()
	if addr.IsLoopback() {
		return true
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range ifaddrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr {
				return true
			}
		}
	}
	return false
}

// localSubreceiver returns the address to listen on for s when s lives on
// this host.
func localSubreceiver(s Subreceiver) (netip.AddrPort, bool) {
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return netip.AddrPort{}, false
	}
	p, ok := parsePort(port)
	if !ok || p == 0 {
		return netip.AddrPort{}, false
	}
	var addr netip.Addr
	if strings.EqualFold(host, "localhost") {
		addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	} else if addr, err = netip.ParseAddr(host); err != nil || addr.Zone() != "" {
		return netip.AddrPort{}, false // a host name: not resolved here
	}
	if !isLocal(addr) {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr.Unmap(), p), true
}

// expandAuto appends the local recorders of the receivers with
// BalancerAuto to c.Receivers and checks them; problems name the parent:
// "receiver[0].subreceivers[1]: local recorder fullflow/2000: ...".
func (c *Config) expandAuto(e *errs) {
	n := len(c.Receivers)
	for i := range n {
		r := c.Receivers[i]
		if !r.BalancerAuto {
			continue
		}
		p := fmt.Sprintf("receiver[%d]", i)
		if r.Mode != RoundRobin && r.Mode != All {
			e.addf("%s.balancer_auto: needs mode RoundRobin or All (mode is %s)", p, r.Mode)
			continue
		}
		var local []Receiver
		for k, s := range r.Subreceivers {
			ap, ok := localSubreceiver(s)
			if !ok {
				continue
			}
			local = append(local, Receiver{
				Stream:           r.Stream,
				DPI:              AutoDPI(r.DPI, k),
				Listen:           ap,
				Proto:            s.Proto,
				Mode:             Recording,
				SubreceiverProto: r.SubreceiverProto,
				QueueBytes:       r.QueueBytes,
				MTU:              r.MTU,
				UDPReadBuffer:    r.UDPReadBuffer,
				TemplateLifetime: r.TemplateLifetime,
				Recording: Recorder{
					Dir:           r.Recording.Dir,
					RotateEvery:   r.Recording.RotateEvery,
					RotateRecords: r.Recording.RotateRecords,
					QueueBytes:    r.Recording.QueueBytes,
					MaxBytes:      r.Recording.MaxBytes,
					MaxAge:        r.Recording.MaxAge,
				},
				AutoOf:  r.Name(),
				AutoSub: k,
			})
		}
		if len(local) == 0 {
			continue
		}
		if r.Recording.Dir == "" {
			e.addf("%s.recording.dir: missing: balancer_auto records subreceivers on this host (%s) and needs a dump directory", p, localList(local))
			continue
		}
		if r.DPI >= autoDPIStep {
			e.addf("%s.dpi: %d: balancer_auto needs a dpi below %d (its local recorders are numbered %d*(subreceiver+1)+dpi)", p, r.DPI, autoDPIStep, autoDPIStep)
			continue
		}
		if last := local[len(local)-1].AutoSub; last >= maxAutoSubs {
			e.addf("%s.subreceivers[%d]: balancer_auto makes local recorders of the first %d subreceivers only", p, last, maxAutoSubs)
			continue
		}
		for _, lr := range local {
			c.Receivers = append(c.Receivers, lr)
			j := len(c.Receivers) - 1
			before := len(*e)
			c.validateReceiver(e, j, true)
			for k := before; k < len(*e); k++ {
				(*e)[k] = fmt.Errorf("%s.subreceivers[%d]: local recorder %s: %w", p, lr.AutoSub, lr.Name(), (*e)[k])
			}
		}
	}
}

func localList(rs []Receiver) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.Proto.String() + " " + r.Listen.String())
	}
	return b.String()
}

// FileReceivers returns the receivers of the file, without the local
// recorders of balancer_auto (which follow them in c.Receivers).
func (c *Config) FileReceivers() []Receiver {
	for i, r := range c.Receivers {
		if r.AutoOf != "" {
			return c.Receivers[:i]
		}
	}
	return c.Receivers
}

// LocalRecorders describes the local recorders of balancer_auto, one line
// each, for -check-config: "receiver fullflow/0 subreceiver tcp
// 127.0.0.1:9920: recorded here as fullflow/1000".
func (c *Config) LocalRecorders() []string {
	var out []string
	for _, r := range c.Receivers {
		if r.AutoOf == "" {
			continue
		}
		out = append(out, fmt.Sprintf("receiver %s subreceiver %s %s: recorded here as %s (balancer_auto)", r.AutoOf, r.Proto, r.Listen, r.Name()))
	}
	return out
}
