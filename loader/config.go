package loader

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ipfix-balancer/ipfix-balancer/config"
	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// The loader's configuration is config.Loader, the [loader] section of the
// TOML file (or of a legacy .env), with its defaults in default.toml; start
// from config.Default().Loader to build one by hand. Options are the rest:
// what no file sets.

// Options are what the loader takes besides its configuration: where to log,
// and timings that ipfix-loader's flags and the tests choose. The zero
// Options are the daemon's.
type Options struct {
	// Log receives the loader's log lines (default slog.Default()).
	Log *slog.Logger
	// GiveUpAfter, when set, ends the retries of a request that keeps
	// failing this long with ErrUnreachable (ipfix-loader -once, so that a
	// cron job ends); 0 retries until the context ends (the daemon).
	GiveUpAfter time.Duration
	// RetryMax bounds the backoff between retries while ClickHouse is down
	// (default DefaultRetryMax).
	RetryMax time.Duration
	// Settle is how long recovery waits before counting the rows of a batch
	// whose outcome is unknown, so an insert still running on the server for
	// a killed loader is seen (default DefaultSettle).
	Settle time.Duration
	// DictionaryPollEvery is how often the dictionary files are checked
	// (default: package dict's).
	DictionaryPollEvery time.Duration
}

// Defaults of Options.
const (
	DefaultRetryMax = 10 * time.Second
	DefaultSettle   = 2 * time.Second
)

// WithDefaults returns o with each zero field at its default, as New uses it.
func (o Options) WithDefaults() Options {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.Settle == 0 {
		o.Settle = DefaultSettle
	}
	return o
}

// check reports what config.Loader.Validate cannot: the aggregates' columns
// (the loader's schema) and bad Options.
func check(cfg *config.Loader, o *Options) error {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	for i, a := range []config.Aggregate{cfg.FullflowAgg, cfg.ClickstreamAgg} {
		if err := validateFields(a, aggKinds[i]); err != nil {
			errs = append(errs, fmt.Errorf("loader.%s_fields: %w", aggKinds[i].name, err))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"give up after", o.GiveUpAfter}, {"retry max", o.RetryMax}, {"settle", o.Settle}, {"dictionary poll every", o.DictionaryPollEvery}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("loader options: %s: %v: negative", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}

// policies returns the enrichment modes of cfg in package dict's terms
// (config has checked their ranges: the conversion is exact).
func policies(cfg *config.Loader) (dict.Policy, dict.LoginPolicy) {
	return dict.Policy{Direction: dict.Mode(cfg.TrafficDirDefMode), Filter: dict.Mode(cfg.SubscriberFilterMode),
			Exclude: dict.Mode(cfg.SubscriberExcludeMode)},
		dict.LoginPolicy{Replace: dict.LoginMode(cfg.ReplaceLoginWithVChannel), UseDict: cfg.UseDicWhenReplacingLogin}
}
