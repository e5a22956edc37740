package loader

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Error kinds of ipfix_loader_errors_total.
const (
	errClickHouse   = "clickhouse"    // a request failed (retried)
	errDecode       = "decode"        // a damaged dump (quarantined to bad/)
	errIO           = "io"            // reading, moving or deleting a dump
	errName         = "name"          // a dump whose name does not parse
	errPartialBatch = "partial_batch" // a batch found partly inserted (never expected)
)

var errorKinds = []string{errClickHouse, errDecode, errIO, errName, errPartialBatch}

// insertBuckets are the upper bounds (seconds) of the insert latency histogram.
var insertBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// histogram is a Prometheus histogram (cumulative le buckets) built from
// counters; the pinned VictoriaMetrics/metrics has no Prometheus histogram.
type histogram struct {
	buckets []*metrics.Counter // one per insertBuckets, then +Inf
	sum     *metrics.FloatCounter
	count   *metrics.Counter
}

func newHistogram(s *metrics.Set, name, labels string) *histogram {
	h := &histogram{}
	for _, b := range insertBuckets {
		h.buckets = append(h.buckets, s.NewCounter(fmt.Sprintf(`%s_bucket{%s,le="%s"}`, name, labels, strconv.FormatFloat(b, 'g', -1, 64))))
	}
	h.buckets = append(h.buckets, s.NewCounter(fmt.Sprintf(`%s_bucket{%s,le="+Inf"}`, name, labels)))
	h.sum = s.NewFloatCounter(fmt.Sprintf(`%s_sum{%s}`, name, labels))
	h.count = s.NewCounter(fmt.Sprintf(`%s_count{%s}`, name, labels))
	return h
}

func (h *histogram) observe(d time.Duration) {
	v := d.Seconds()
	for i, b := range insertBuckets {
		if v <= b {
			h.buckets[i].Inc()
		}
	}
	h.buckets[len(insertBuckets)].Inc()
	h.sum.Add(v)
	h.count.Inc()
}

// loaderMetrics are the loader's metrics, in its own set.
type loaderMetrics struct {
	set *metrics.Set

	filesLoaded, filesBad     *metrics.Counter
	records                   map[string]*metrics.Counter // by table
	bytes                     map[string]*metrics.Counter // RowBinary bytes by table
	insertDuration            map[string]*histogram       // by table
	errors                    map[string]*metrics.Counter // by kind
	retries                   *metrics.Counter
	skippedFields             *metrics.Counter
	skippedSets               map[string]*metrics.Counter // by kind
	unmappedRecords           *metrics.Counter
	optionsRecords            *metrics.Counter
	recoveredDone             *metrics.Counter
	recoveredAborted          *metrics.Counter
	droppedPartitions         map[string]*metrics.Counter // by table, raw and aggregated
	backlogFiles, backlogSize atomic.Int64
	up                        atomic.Int64
	lastLoad                  atomic.Int64 // unix seconds
}

func newLoaderMetrics(tables, aggregates []string) *loaderMetrics {
	s := metrics.NewSet()
	m := &loaderMetrics{
		set:               s,
		filesLoaded:       s.NewCounter(`ipfix_loader_files_total{result="loaded"}`),
		filesBad:          s.NewCounter(`ipfix_loader_files_total{result="bad"}`),
		records:           map[string]*metrics.Counter{},
		bytes:             map[string]*metrics.Counter{},
		insertDuration:    map[string]*histogram{},
		skippedSets:       map[string]*metrics.Counter{},
		errors:            map[string]*metrics.Counter{},
		retries:           s.NewCounter(`ipfix_loader_retries_total`),
		skippedFields:     s.NewCounter(`ipfix_loader_skipped_fields_total`),
		unmappedRecords:   s.NewCounter(`ipfix_loader_unmapped_records_total`),
		optionsRecords:    s.NewCounter(`ipfix_loader_options_records_total`),
		recoveredDone:     s.NewCounter(`ipfix_loader_recovered_batches_total{result="done"}`),
		recoveredAborted:  s.NewCounter(`ipfix_loader_recovered_batches_total{result="aborted"}`),
		droppedPartitions: map[string]*metrics.Counter{},
	}
	for _, t := range tables {
		l := fmt.Sprintf(`table=%q`, t)
		m.records[t] = s.NewCounter(`ipfix_loader_inserted_records_total{` + l + `}`)
		m.bytes[t] = s.NewCounter(`ipfix_loader_inserted_bytes_total{` + l + `}`)
		m.insertDuration[t] = newHistogram(s, "ipfix_loader_insert_duration_seconds", l)
	}
	for _, t := range append(append([]string(nil), tables...), aggregates...) {
		m.droppedPartitions[t] = s.NewCounter(fmt.Sprintf(`ipfix_loader_dropped_partitions_total{table=%q}`, t))
	}
	for _, k := range skipKinds {
		m.skippedSets[k] = s.NewCounter(fmt.Sprintf(`ipfix_loader_skipped_sets_total{kind=%q}`, k))
	}
	for _, k := range errorKinds {
		m.errors[k] = s.NewCounter(fmt.Sprintf(`ipfix_loader_errors_total{kind=%q}`, k))
	}
	s.NewGauge(`ipfix_loader_backlog_files`, func() float64 { return float64(m.backlogFiles.Load()) })
	s.NewGauge(`ipfix_loader_backlog_bytes`, func() float64 { return float64(m.backlogSize.Load()) })
	s.NewGauge(`ipfix_loader_clickhouse_up`, func() float64 { return float64(m.up.Load()) })
	s.NewGauge(`ipfix_loader_last_load_timestamp_seconds`, func() float64 { return float64(m.lastLoad.Load()) })
	return m
}
