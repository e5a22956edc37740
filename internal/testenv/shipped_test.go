package testenv

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/config"
)

// The shipped files, rewritten with WithMode, forward the chosen stream to
// the given subreceivers, keep the others recording, and spool under the
// test's directory, not the packaged /var/lib.
func TestShippedWithMode(t *testing.T) {
	for _, rel := range []string{"config/default.toml", "packaging/balancer.toml"} {
		t.Run(rel, func(t *testing.T) {
			s := ShippedConfig(t, rel, WithMode("fullflow", "All", "127.0.0.1:9001", "127.0.0.1:9002"))
			cfg, err := config.Load(s.Path)
			require.NoError(t, err)
			modes := map[string]string{}
			for _, r := range cfg.Receivers {
				modes[r.Stream] = r.Mode.String()
				assert.Equal(t, s.SpoolDir, r.Spool.Dir, "receiver %s spools under the test's dir", r.Stream)
				if r.Stream == "fullflow" {
					var subs []string
					for _, sub := range r.Subreceivers {
						subs = append(subs, sub.Addr)
					}
					assert.Equal(t, []string{"127.0.0.1:9001", "127.0.0.1:9002"}, subs)
				}
			}
			assert.Equal(t, map[string]string{"fullflow": "All", "clickstream": "Recording", "dnsflow": "Recording"}, modes)
		})
	}
}
