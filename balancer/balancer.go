package balancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ipfix-balancer/ipfix-balancer/config"
)

// Balancer runs the receivers of one configuration, applies new configurations
// (Reload) and hands its sockets to a new process on restart (see handover.go).
type Balancer struct {
	opts Options
	log  *slog.Logger
	set  *metrics.Set

	reloadsOK, reloadsFailed *metrics.Counter
	// handoversOK, handoversFailed count restarts by hand-over: done, or failed
	// (the successor exited before it took over: we serve on).
	handoversOK, handoversFailed *metrics.Counter
	// drained is closed when Run has stopped every receiver: a successor's control
	// connection stays open until then for the sessions we accept meanwhile.
	drained    chan struct{}
	lastReload time.Time

	mu        sync.Mutex
	cfg       *config.Config
	receivers map[string]*running // by Receiver.Name()
	ctx       context.Context
	control   *net.UnixListener
	handover  chan struct{} // closed when a new process took our sockets
	handOnce  sync.Once
	running   bool
	shared    map[string]net.Listener // passed on to a successor (ShareListener)
}

type running struct {
	r      *Receiver
	cancel context.CancelFunc
	done   chan error
}

// NewBalancer checks cfg and builds its receivers; nothing listens yet.
func NewBalancer(cfg *config.Config, opts Options) (*Balancer, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Balancer{opts: opts, log: opts.Logger, set: metrics.NewSet(), cfg: cfg,
		receivers: make(map[string]*running), handover: make(chan struct{}), drained: make(chan struct{}),
		// The configuration loaded at start is the last good one until a
		// reload (as Prometheus's own reload timestamp): never year 1.
		lastReload: time.Now()}
	b.reloadsOK = b.set.NewCounter(`ipfix_balancer_config_reloads_total{result="success"}`)
	b.reloadsFailed = b.set.NewCounter(`ipfix_balancer_config_reloads_total{result="failure"}`)
	b.handoversOK = b.set.NewCounter(`ipfix_balancer_handovers_total{result="success"}`)
	b.handoversFailed = b.set.NewCounter(`ipfix_balancer_handovers_total{result="failure"}`)
	b.set.NewGauge(`ipfix_balancer_config_last_reload_success_timestamp_seconds`, func() float64 {
		b.mu.Lock()
		defer b.mu.Unlock()
		return float64(b.lastReload.Unix())
	})
	for _, rc := range cfg.Receivers {
		r, err := New(rc, opts)
		if err != nil {
			return nil, err
		}
		b.receivers[r.Name()] = &running{r: r}
	}
	return b, nil
}

// Receiver returns the running receiver named "stream/dpi", or nil.
func (b *Balancer) Receiver(name string) *Receiver {
	b.mu.Lock()
	defer b.mu.Unlock()
	if rr := b.receivers[name]; rr != nil {
		return rr.r
	}
	return nil
}

// Run starts every receiver — taking the sockets of a running predecessor when
// one answers on the control socket — and serves until ctx ends or a new process
// takes over. Then it drains the receivers and returns.
func (b *Balancer) Run(ctx context.Context) error {
	metrics.RegisterSet(b.set)
	defer metrics.UnregisterSet(b.set, true)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()

	peer, err := dialPeer(b.cfg.ControlSocket)
	if err != nil && !errors.Is(err, errNoPeer) {
		b.log.Warn("cannot reach the running ipfix-balancer, starting without hand-over", "control_socket", b.cfg.ControlSocket, "err", err)
	}
	if peer != nil {
		if err := b.takeUDPSockets(peer); err != nil {
			b.log.Warn("hand-over of udp sockets failed", "err", err)
		}
	}

	b.mu.Lock()
	for _, rr := range b.receivers {
		b.startLocked(rr)
	}
	list := make([]*running, 0, len(b.receivers))
	for _, rr := range b.receivers {
		list = append(list, rr)
	}
	b.mu.Unlock()
	for _, rr := range list {
		select {
		case <-rr.r.Ready():
		case err := <-rr.done:
			rr.done = nil // stopAll must not wait for it again
			if peer != nil {
				_ = peer.Close() // the predecessor serves on
			}
			cancel()
			b.stopAll()
			return err
		case <-time.After(10 * time.Second):
			if peer != nil {
				_ = peer.Close()
			}
			cancel()
			b.stopAll()
			return fmt.Errorf("receiver %s did not start within 10s", rr.r.Name())
		}
	}
	if peer != nil {
		n, err := b.takeSessions(peer)
		if err != nil {
			b.log.Warn("hand-over of exporter sessions failed", "err", err)
		} else {
			b.log.Info("took over from the previous process", "sessions", n)
		}
		// The predecessor passes on the connections it accepts while it stops,
		// until it closes the control connection.
		go b.takeLateSessions(ctx, peer)
	}
	if err := b.listenControl(); err != nil {
		b.log.Warn("no control socket: restart without loss is not available", "control_socket", b.cfg.ControlSocket, "err", err)
	}
	b.mu.Lock()
	b.running = true
	b.mu.Unlock()
	b.log.Info("balancer running", "receivers", len(list))

	select {
	case <-ctx.Done():
		b.closeControl(true)
	case <-b.handover:
		// The successor has put its own socket at the path: leave it.
		b.closeControl(false)
		b.log.Info("a new process took over: draining and exiting")
	}
	b.log.Info("stopping", "receivers", len(list))
	cancel()
	err = b.stopAll()
	close(b.drained)
	b.log.Info("stopped")
	return err
}

// startLocked runs a receiver in its own goroutine. b.mu held.
func (b *Balancer) startLocked(rr *running) {
	ctx, cancel := context.WithCancel(b.ctx)
	rr.cancel = cancel
	rr.done = make(chan error, 1)
	go func() {
		err := rr.r.Run(ctx)
		if err != nil {
			b.log.Error("receiver stopped", "receiver", rr.r.Name(), "err", err)
		}
		rr.done <- err
	}()
}

// stopAll ends every receiver (each drains up to its shutdown timeout) and waits.
func (b *Balancer) stopAll() error {
	b.mu.Lock()
	list := make([]*running, 0, len(b.receivers))
	for _, rr := range b.receivers {
		list = append(list, rr)
	}
	b.mu.Unlock()
	var errs []error
	for _, rr := range list {
		if rr.cancel != nil {
			rr.cancel()
		}
	}
	for _, rr := range list {
		if rr.done != nil {
			if err := <-rr.done; err != nil {
				errs = append(errs, err)
			}
			rr.done = nil
		}
		_ = rr.r.Close()
	}
	return errors.Join(errs...)
}

// Reload applies cfg all or nothing as far as checking goes: a receiver that cannot
// be built refuses the whole reload and the running configuration stays. Receivers
// whose socket is unchanged are reconfigured live (their exporters never notice);
// the others are stopped or started.
func (b *Balancer) Reload(cfg *config.Config) error {
	err := b.reload(cfg)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		b.reloadsFailed.Inc()
		b.log.Error("reload refused, running configuration kept", "err", err)
		return err
	}
	b.reloadsOK.Inc()
	b.lastReload = time.Now()
	b.log.Info("configuration reloaded", "receivers", len(b.receivers))
	return nil
}

func (b *Balancer) reload(cfg *config.Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ctx == nil {
		return errors.New("balancer not running")
	}
	if cfg.Metrics != b.cfg.Metrics {
		b.log.Warn("metrics.listen changes take effect at the next restart")
	}
	want := make(map[string]config.Receiver, len(cfg.Receivers))
	for _, rc := range cfg.Receivers {
		want[rc.Name()] = rc
	}
	// Check first: build what is new or must be rebuilt, touching nothing.
	fresh := make(map[string]*Receiver)
	var errs []error
	for name, rc := range want {
		if rr, ok := b.receivers[name]; ok && sameSocket(rr.r.cfg, rc) {
			if err := rr.r.checkReconfigure(rc); err != nil {
				errs = append(errs, fmt.Errorf("receiver %s: %w", name, err))
			}
			continue
		}
		r, err := New(rc, b.opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fresh[name] = r
	}
	if len(errs) > 0 {
		for _, r := range fresh {
			_ = r.Close() // its spools' locks
		}
		return errors.Join(errs...)
	}
	// Apply.
	for name, rr := range b.receivers {
		rc, keep := want[name]
		if keep && sameSocket(rr.r.cfg, rc) {
			if !reflect.DeepEqual(rr.r.cfg, rc) {
				if err := rr.r.Reconfigure(rc); err != nil {
					errs = append(errs, fmt.Errorf("receiver %s: %w", name, err))
				}
			}
			continue
		}
		rr.cancel()
		go func() { <-rr.done; _ = rr.r.Close() }()
		delete(b.receivers, name)
		b.log.Info("receiver removed", "receiver", name)
	}
	for name, r := range fresh {
		rr := &running{r: r}
		b.receivers[name] = rr
		b.startLocked(rr)
		b.log.Info("receiver added", "receiver", name)
	}
	b.cfg = cfg
	return errors.Join(errs...)
}

// sameSocket reports whether a receiver can be reconfigured without reopening its
// listening socket (its CPU and read buffer change in place: see reconfigure).
func sameSocket(a, b config.Receiver) bool {
	return a.Listen == b.Listen && a.Proto == b.Proto
}

// listenControl serves the control socket: a new process connects to it to take
// over this one's sockets.
func (b *Balancer) listenControl() error {
	path := b.cfg.ControlSocket
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// A stale socket of a dead process (or of the predecessor we just took over
	// from) is in the way.
	_ = os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	_ = os.Chmod(path, 0o600)
	b.mu.Lock()
	b.control = ln
	b.mu.Unlock()
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			go b.serveHandover(c)
		}
	}()
	return nil
}

func (b *Balancer) closeControl(unlink bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.control != nil {
		b.control.SetUnlinkOnClose(unlink)
		_ = b.control.Close()
		b.control = nil
	}
}

// ShareListener makes ln, a listener of the daemon's own such as the metrics
// listener, available to a successor at restart under name (InheritListener).
// The caller stops serving on ln once HandedOver is closed.
func (b *Balancer) ShareListener(name string, ln net.Listener) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.shared == nil {
		b.shared = make(map[string]net.Listener)
	}
	b.shared[name] = ln
}

// HandedOver is closed when a new process has taken this one's sockets; Run then
// drains and returns.
func (b *Balancer) HandedOver() <-chan struct{} { return b.handover }

// Running reports whether every receiver listens (and a hand-over, if any, is done).
func (b *Balancer) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running
}

// RestartFailed counts a restart whose new process ended before it took over
// (it exited at start, refused the configuration, or failed after taking
// sockets): this process serves every socket on.
func (b *Balancer) RestartFailed(err error) {
	select {
	case <-b.handover:
		b.log.Error("the new process ended after it took over", "err", err)
		return
	default:
	}
	b.handoversFailed.Inc()
	b.log.Error("restart failed: the new process ended before it took over, serving on", "err", err)
}

// ReloadFailed counts a reload refused before it reached the balancer (a
// configuration file that does not load).
func (b *Balancer) ReloadFailed(err error) {
	b.reloadsFailed.Inc()
	b.log.Error("reload refused, running configuration kept", "err", err)
}
