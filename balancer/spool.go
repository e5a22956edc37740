package balancer

import (
	"fmt"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/dump"
	"github.com/ipfix-balancer/ipfix-balancer/spool"
)

// Spools (issue #12). In All mode each TCP subreceiver has a spool
// (forward.Spooler); in RoundRobin a TCP receiver has one (rrSpool). UDP
// subreceivers, and RoundRobin UDP receivers, have none: what they cannot
// take is dropped and counted as before.

// spoolConfig is the spool.Config of the spool in dir of a receiver with
// configuration rc.
func spoolConfig(rc config.Receiver, dir string) (spool.Config, error) {
	drop, err := spool.ParseDrop(rc.Spool.Drop)
	if err != nil {
		return spool.Config{}, err
	}
	return spool.Config{Dir: dir, MaxBytes: rc.Spool.MaxBytes, MinFreeBytes: rc.Spool.MinFreeBytes, Drop: drop}, nil
}

// newSpool opens the spool of subreceiver sub ("" for the receiver's own, in
// RoundRobin) and remembers it, to close it when the receiver stops.
func (r *Receiver) newSpool(sub, labels string) (*spool.Spool, error) {
	cfg, err := spoolConfig(r.cfg, dump.SpoolDir(r.cfg.Spool.Dir, r.cfg.Stream, r.cfg.DPI, sub))
	if err != nil {
		return nil, err
	}
	sp, err := spool.New(cfg, labels, r.set, r.log)
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// spoolSubreceiver gives a TCP subreceiver of an All receiver its spool.
func (r *Receiver) spoolSubreceiver(o interface{ SetSpooler(*forward.Spooler) }, t config.Subreceiver) error {
	if r.cfg.Mode != config.All || r.cfg.Spool.Dir == "" {
		return nil
	}
	sp, err := r.newSpool(t.Addr, r.labels+`,subreceiver="`+subreceiverLabel(t)+`"`)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	p := forward.NewSpooler(sp, (*host)(r), r.log.With("subreceiver", t.Addr))
	o.SetSpooler(p)
	r.spMu.Lock()
	r.spoolers = append(r.spoolers, p)
	r.spMu.Unlock()
	return nil
}

// setSpoolLimits applies a reload's quota, free-space floor and drop end to
// the running spools.
func (r *Receiver) setSpoolLimits(rc config.Receiver) {
	drop, _ := spool.ParseDrop(rc.Spool.Drop) // validated by config
	r.spMu.Lock()
	defer r.spMu.Unlock()
	for _, p := range r.spoolers {
		p.Spool().SetLimits(rc.Spool.MaxBytes, rc.Spool.MinFreeBytes, drop)
	}
}

// closeSpools closes every spool (Close persists the position and releases
// the directory's lock for a successor); the loop no longer writes them.
func (r *Receiver) closeSpools() {
	r.spMu.Lock()
	list := r.spoolers
	r.spoolers = nil
	r.spMu.Unlock()
	for _, p := range list {
		p.Close()
	}
}
