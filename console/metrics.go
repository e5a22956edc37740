package console

import "github.com/VictoriaMetrics/metrics"

// Reasons of ipfix_balancer_console_refused_requests_total.
const (
	refusedUnauthenticated = "unauthenticated" // a change without a logged-in operator
	refusedCSRF            = "csrf"            // a change without the session's CSRF token
	refusedCrossSite       = "cross_site"      // Origin or Sec-Fetch-Site says another site
	refusedLogin           = "login"           // an unknown token
)

// Results of ipfix_balancer_console_changes_total.
const (
	changeApplied = "applied" // written and reloaded
	changeInvalid = "invalid" // refused by the checks, file untouched
	changeFailed  = "failed"  // not written, or refused by the reload and the file restored
)

// consoleMetrics are the console's own series.
type consoleMetrics struct {
	refused map[string]*metrics.Counter
	changes map[string]*metrics.Counter
}

func newConsoleMetrics(set *metrics.Set) *consoleMetrics {
	m := &consoleMetrics{refused: map[string]*metrics.Counter{}, changes: map[string]*metrics.Counter{}}
	for _, r := range []string{refusedUnauthenticated, refusedCSRF, refusedCrossSite, refusedLogin} {
		m.refused[r] = set.NewCounter(`ipfix_balancer_console_refused_requests_total{reason="` + r + `"}`)
	}
	for _, r := range []string{changeApplied, changeInvalid, changeFailed} {
		m.changes[r] = set.NewCounter(`ipfix_balancer_console_changes_total{result="` + r + `"}`)
	}
	return m
}
