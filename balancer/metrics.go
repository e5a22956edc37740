package balancer

import (
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"

	"github.com/ipfix-balancer/ipfix-balancer/balancer/forward"
	"github.com/ipfix-balancer/ipfix-balancer/ipfix"
)

// Parse error kinds: the label values of ipfix_balancer_parse_errors_total.
var parseErrorKinds = []struct {
	err  error
	kind string
}{
	{ipfix.ErrVersion, "version"},
	{ipfix.ErrMessageLength, "message_length"},
	{ipfix.ErrShortMessage, "short_message"},
	{ipfix.ErrSetLength, "set_length"},
	{ipfix.ErrTemplate, "template"},
	{ipfix.ErrUnknownTemplate, "unknown_template"},
	{ipfix.ErrFieldLength, "field_length"},
	{ipfix.ErrUnknownWithdrawal, "unknown_withdrawal"},
	{ipfix.ErrTooManyTemplates, "too_many_templates"},
}

func parseErrorKind(err error) string {
	for _, k := range parseErrorKinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return "other"
}

// receiverMetrics are one receiver's own series; batch fields are accumulated on
// the loop and published once per read.
type receiverMetrics struct {
	receivedMessages *metrics.Counter
	receivedBytes    *metrics.Counter
	receivedRecords  *metrics.Counter
	dropped          map[string]*metrics.Counter
	parseErrors      map[string]*metrics.Counter
	exporterLost     *metrics.Counter
	exporterDisorder *metrics.Counter
	sessionsTotal    *metrics.Counter
	// handedOver counts exporter sessions passed to a successor process: at the
	// hand-over, and accepted after it (late, passed as they come).
	handedOver, handedOverLate *metrics.Counter
	templateSets               *metrics.Counter
	// templateIDsExhausted counts templates that got no id of their own
	// downstream (see templateIDs).
	templateIDsExhausted *metrics.Counter
	sessions             atomic.Int64
	templates            atomic.Int64

	batchMessages, batchBytes, batchRecords int
}

func newReceiverMetrics(set *metrics.Set, labels string) *receiverMetrics {
	m := &receiverMetrics{
		receivedMessages:     set.NewCounter(`ipfix_balancer_received_messages_total{` + labels + `}`),
		receivedBytes:        set.NewCounter(`ipfix_balancer_received_bytes_total{` + labels + `}`),
		receivedRecords:      set.NewCounter(`ipfix_balancer_received_records_total{` + labels + `}`),
		exporterLost:         set.NewCounter(`ipfix_balancer_exporter_lost_records_total{` + labels + `}`),
		exporterDisorder:     set.NewCounter(`ipfix_balancer_exporter_out_of_order_messages_total{` + labels + `}`),
		sessionsTotal:        set.NewCounter(`ipfix_balancer_exporter_sessions_total{` + labels + `}`),
		templateSets:         set.NewCounter(`ipfix_balancer_template_messages_total{` + labels + `}`),
		handedOver:           set.NewCounter(`ipfix_balancer_handed_over_sessions_total{` + labels + `,when="handover"}`),
		handedOverLate:       set.NewCounter(`ipfix_balancer_handed_over_sessions_total{` + labels + `,when="late"}`),
		templateIDsExhausted: set.NewCounter(`ipfix_balancer_template_ids_exhausted_total{` + labels + `}`),
		dropped:              make(map[string]*metrics.Counter),
		parseErrors:          make(map[string]*metrics.Counter),
	}
	// All reasons up front: the map is read by the stats goroutine, so a reload
	// that adds a recorder must not add keys.
	for _, reason := range []string{forward.ReasonNoSubreceiver, forward.ReasonMalformed, reasonWriterQueueFull, reasonWriteError, forward.ReasonTooManySources} {
		m.dropped[reason] = set.NewCounter(`ipfix_balancer_dropped_messages_total{` + labels + `,reason="` + reason + `"}`)
	}
	for _, k := range parseErrorKinds {
		m.parseErrors[k.kind] = set.NewCounter(`ipfix_balancer_parse_errors_total{` + labels + `,kind="` + k.kind + `"}`)
	}
	m.parseErrors["other"] = set.NewCounter(`ipfix_balancer_parse_errors_total{` + labels + `,kind="other"}`)
	set.NewGauge(`ipfix_balancer_exporter_sessions{`+labels+`}`, func() float64 { return float64(m.sessions.Load()) })
	set.NewGauge(`ipfix_balancer_templates{`+labels+`}`, func() float64 { return float64(m.templates.Load()) })
	return m
}

func (m *receiverMetrics) publish() {
	if m.batchMessages > 0 {
		m.receivedMessages.Add(m.batchMessages)
		m.receivedBytes.Add(m.batchBytes)
		m.receivedRecords.Add(m.batchRecords)
	}
	m.batchMessages, m.batchBytes, m.batchRecords = 0, 0, 0
}

// labelsFor renders the constant labels of a receiver's series.
func labelsFor(stream string, dpi int) string {
	return `stream="` + stream + `",dpi="` + strconv.Itoa(dpi) + `"`
}
