package dict_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ipfix-balancer/ipfix-balancer/loader/dict"
)

// ULR_REPLACE_LOGIN_WITH_VCHANNEL in its three modes, with and without
// ULR_USE_DIC_WHEN_REPLACING_LOGIN and vchannel_name_dic.
func TestLogin(t *testing.T) {
	withDict := testSet(t, map[string]string{dict.VChannelName: "10\tOffice_Moscow\n20\tBranch_Kazan\n"})
	noDict := dict.EmptySet()
	type lp = dict.LoginPolicy
	cases := []struct {
		name     string
		policy   lp
		set      *dict.Set
		login    string
		vchannel uint16
		want     string
	}{
		{"0: login kept", lp{}, withDict, "alice", 10, "alice"},
		{"0: empty login kept empty", lp{}, withDict, "", 10, ""},
		{"0: the dictionary flag alone changes nothing", lp{UseDict: true}, withDict, "", 10, ""},
		{"1: login replaced by the vchannel number", lp{Replace: 1}, withDict, "alice", 10, "10"},
		{"1: empty login replaced by the vchannel number", lp{Replace: 1}, noDict, "", 65535, "65535"},
		{"1 with dictionary: replaced by the vchannel's name", lp{Replace: 1, UseDict: true}, withDict, "alice", 10, "Office_Moscow"},
		{"1 with dictionary: a vchannel it lacks gives its number", lp{Replace: 1, UseDict: true}, withDict, "alice", 30, "30"},
		{"1 with the flag but no dictionary: the number", lp{Replace: 1, UseDict: true}, noDict, "alice", 20, "20"},
		{"1: vchannel 0 is a vchannel too", lp{Replace: 1}, noDict, "alice", 0, "0"},
		{"2: login kept when present", lp{Replace: 2}, withDict, "alice", 10, "alice"},
		{"2: empty login replaced by the number", lp{Replace: 2}, withDict, "", 10, "10"},
		{"2 with dictionary: login kept when present", lp{Replace: 2, UseDict: true}, withDict, "alice", 20, "alice"},
		{"2 with dictionary: empty login replaced by the name", lp{Replace: 2, UseDict: true}, withDict, "", 20, "Branch_Kazan"},
		{"2 with dictionary: empty login, vchannel unnamed", lp{Replace: 2, UseDict: true}, withDict, "", 21, "21"},
		{"2 with the flag but no dictionary: the number", lp{Replace: 2, UseDict: true}, noDict, "", 20, "20"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.policy.Login(tc.set, tc.login, tc.vchannel))
		})
	}
}

func TestParseLoginMode(t *testing.T) {
	for in, want := range map[string]dict.LoginMode{"0": 0, "off": 0, "1": 1, "always": 1, "2": 2, "if_empty": 2} {
		got, err := dict.ParseLoginMode(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
		assert.Equal(t, []string{"off", "always", "if_empty"}[want], got.String())
	}
	_, err := dict.ParseLoginMode("3")
	assert.Error(t, err)
}
