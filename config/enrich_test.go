package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The [loader] enrichment keys: defaults change nothing; modes are checked
// and need a dictionary dir.
func TestLoaderEnrichmentKeys(t *testing.T) {
	def := Default()
	assert.Empty(t, def.Loader.Dictionaries)
	assert.Zero(t, def.Loader.TrafficDirDefMode+def.Loader.SubscriberFilterMode+def.Loader.SubscriberExcludeMode+def.Loader.ReplaceLoginWithVChannel)
	assert.False(t, def.Loader.UseDicWhenReplacingLogin)

	c := mustParse(t, "[loader]\ndictionaries = \"/etc/dic\"\ntraffic_dir_def_mode = 2\nsubscriber_filter_mode = 2\n"+
		"subscriber_exclude_mode = 4\nreplace_login_with_vchannel = 2\nuse_dic_when_replacing_login = true\n")
	assert.Equal(t, "/etc/dic", c.Loader.Dictionaries)
	assert.Equal(t, []int{2, 2, 4, 2}, []int{c.Loader.TrafficDirDefMode, c.Loader.SubscriberFilterMode, c.Loader.SubscriberExcludeMode, c.Loader.ReplaceLoginWithVChannel})
	assert.True(t, c.Loader.UseDicWhenReplacingLogin)
	out, err := c.TOML()
	require.NoError(t, err)
	assert.Contains(t, string(out), "traffic_dir_def_mode = 2\n")
	assert.Contains(t, string(out), "use_dic_when_replacing_login = true\n")

	_, err = Parse([]byte("[loader]\ntraffic_dir_def_mode = 5\nsubscriber_filter_mode = 1\nreplace_login_with_vchannel = 3\nuse_dic_when_replacing_login = true\n"), "x.toml")
	require.Error(t, err)
	for _, want := range []string{
		"loader.traffic_dir_def_mode: 5: want 0..4",
		"loader.subscriber_filter_mode: 1: needs loader.dictionaries",
		"loader.replace_login_with_vchannel: 3: want 0..2",
		"loader.use_dic_when_replacing_login: needs loader.dictionaries",
	} {
		assert.Contains(t, err.Error(), want)
	}
}

// The legacy collector's settings in a .env set the loader's keys, with the
// legacy dictionary dir; a bad value is an error naming the line.
func TestEnvLoaderSettings(t *testing.T) {
	env := "IPFIX_FULLFLOW_PORT[0]=1500\nTRAFFIC_DIR_DEF_MODE=2\nSUBSCRIBER_FILTER_MODE=2\nSUBSCRIBER_EXCLUDE_MODE=1\n" +
		"ULR_REPLACE_LOGIN_WITH_VCHANNEL=1\nULR_USE_DIC_WHEN_REPLACING_LOGIN=1\nULR_VCHANNEL_NAME_DIC_URL=\n"
	c, warnings, err := ParseEnv([]byte(env), "in.env")
	require.NoError(t, err)
	assert.Equal(t, []string{"in.env:7: ULR_VCHANNEL_NAME_DIC_URL: ignored: collector setting"}, warnings)
	assert.Equal(t, LegacyDictionaryDir, c.Loader.Dictionaries)
	assert.Equal(t, []int{2, 2, 1, 1}, []int{c.Loader.TrafficDirDefMode, c.Loader.SubscriberFilterMode, c.Loader.SubscriberExcludeMode, c.Loader.ReplaceLoginWithVChannel})
	assert.True(t, c.Loader.UseDicWhenReplacingLogin)

	c, _, err = ParseEnv([]byte("IPFIX_FULLFLOW_PORT[0]=1500\nTRAFFIC_DIR_DEF_MODE=0\nULR_REPLACE_LOGIN_WITH_VCHANNEL=2\n"), "in.env")
	require.NoError(t, err)
	assert.Empty(t, c.Loader.Dictionaries, "no mode reads a dictionary")
	assert.Equal(t, 2, c.Loader.ReplaceLoginWithVChannel)

	_, _, err = ParseEnv([]byte("IPFIX_FULLFLOW_PORT[0]=1500\nSUBSCRIBER_FILTER_MODE=5\nULR_USE_DIC_WHEN_REPLACING_LOGIN=yes\n"), "in.env")
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), `in.env:2: SUBSCRIBER_FILTER_MODE: "5": want 0..4`), err.Error())
	assert.True(t, strings.Contains(err.Error(), `in.env:3: ULR_USE_DIC_WHEN_REPLACING_LOGIN: "yes": want 0..1`), err.Error())
}
