package balancer_test

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/balancer"
	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/internal/testenv"
)

// Reloads that add and remove subreceivers while the stats line is computed:
// the stats goroutine reads the subreceivers' metrics that a reload adds on the
// loop (once a fatal "concurrent map iteration and map write"). Run with -race.
func TestReloadUnderStats(t *testing.T) {
	base := testenv.StartCollector(t, "tcp")
	var more []*testenv.Collector
	for range 20 {
		more = append(more, testenv.StartCollector(t, "tcp"))
	}
	cfg := receiverConfig(config.All, base)
	r, _ := runReceiver(t, cfg, balancer.Options{ShutdownTimeout: 2 * time.Second,
		StatsEvery: time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	for i, c := range more {
		next := cfg
		next.Subreceivers = append(slices.Clone(cfg.Subreceivers), config.Subreceiver{Addr: c.Addr(), Proto: config.TCP})
		require.NoError(t, r.Reconfigure(next), "reload %d", i)
		require.NoError(t, r.Reconfigure(cfg), "reload %d back", i)
	}
	tr := makeTraffic(t, 1000, 1, 1400, 1)
	sendTCP(t, r.Addr(), tr.stream(), 1<<16)
	require.True(t, base.WaitRecords(tr.count, 10*time.Second), "got %d of %d", base.Stats().Records, tr.count)
}
