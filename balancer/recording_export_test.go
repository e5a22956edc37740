package balancer

import (
	"os"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/config"
)

// DumpFile is what a dump file hook returns: an *os.File or a wrapper of one.
type DumpFile = dumpFile

// SetDumpFileHook makes every recorder wrap the dump files it opens with wrap
// until the test ends (tests inject write errors with it; not for t.Parallel).
func SetDumpFileHook(t testing.TB, wrap func(*os.File) DumpFile) {
	t.Helper()
	dumpFileHook.Store(&wrap)
	t.Cleanup(func() { dumpFileHook.Store(nil) })
}

// TestRecorder is the recorder of a Recording receiver driven directly, as
// its event loop would (one goroutine), without sockets: for benchmarks.
type TestRecorder struct {
	r *Receiver
	o output
}

// NewTestRecorder builds the receiver of cfg (mode Recording) and returns its
// recorder.
func NewTestRecorder(cfg config.Receiver, opts Options) (*TestRecorder, error) {
	r, err := New(cfg, opts)
	if err != nil {
		return nil, err
	}
	return &TestRecorder{r: r, o: r.outputs[0]}, nil
}

func (t *TestRecorder) Start() { t.o.Start() }

// Send hands msg to the recorder as dispatch would; data and templates are
// what its sets carry (dispatch knows them from its own walk).
func (t *TestRecorder) Send(msg []byte, records int, data, templates bool) {
	t.o.Send(&forward.Message{Bytes: msg, Records: records, Data: data, Templates: templates})
}

func (t *TestRecorder) Flush()                { t.o.Flush() }
func (t *TestRecorder) Pending() int          { return t.o.PendingBytes() }
func (t *TestRecorder) Stop()                 { t.o.Stop() }
func (t *TestRecorder) Metrics() *metrics.Set { return t.r.set }

// HasDataSet and HasTemplateSet tell what a message's sets carry.
func HasDataSet(msg []byte) bool     { d, _ := setKinds(msg); return d }
func HasTemplateSet(msg []byte) bool { _, t := setKinds(msg); return t }
