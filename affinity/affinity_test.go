package affinity

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	f := func(in string, want CPUSet, wantString string) {
		t.Helper()
		got, err := Parse(in)
		require.NoError(t, err, "Parse(%q)", in)
		assert.Equal(t, want, got, "Parse(%q)", in)
		assert.Equal(t, wantString, got.String(), "Parse(%q).String()", in)
	}
	f("", nil, "")
	f("  ", nil, "")
	f("61", CPUSet{61}, "61")
	f("0", CPUSet{0}, "0")
	f("0-3,8", CPUSet{0, 1, 2, 3, 8}, "0-3,8")
	f(" 2 , 5-6 ", CPUSet{2, 5, 6}, "2,5-6")
	f("5 - 6", CPUSet{5, 6}, "5-6")
	f("8,0-3", CPUSet{0, 1, 2, 3, 8}, "0-3,8")      // unsorted input
	f("1,1,0-2,2", CPUSet{0, 1, 2}, "0-2")          // duplicates and overlaps
	f("3-3", CPUSet{3}, "3")                        // one-CPU range
	f("007", CPUSet{7}, "7")                        // leading zeros
	f("1022-1023", CPUSet{1022, 1023}, "1022-1023") // the top of CPU_SETSIZE
	f("0,2,4-5,7-9", CPUSet{0, 2, 4, 5, 7, 8, 9}, "0,2,4-5,7-9")
}

func TestParseErrors(t *testing.T) {
	f := func(in, wantErr string) {
		t.Helper()
		got, err := Parse(in)
		assert.EqualError(t, err, wantErr, "Parse(%q)", in)
		assert.Nil(t, got)
	}
	f("x", `cpu list "x": "x": not a cpu number`)
	f("0-3,x", `cpu list "0-3,x": "x": not a cpu number`)
	f("61x", `cpu list "61x": "61x": not a cpu number`)
	f("0,,3", `cpu list "0,,3": empty part`)
	f("0,", `cpu list "0,": empty part`)
	f("-1", `cpu list "-1": "-1": missing cpu number`)
	f("3-", `cpu list "3-": "3-": missing cpu number`)
	f("5-2", `cpu list "5-2": "5-2": range ends before it starts`)
	f("1-2-3", `cpu list "1-2-3": "1-2-3": not a cpu number`)
	f("+1", `cpu list "+1": "+1": not a cpu number`)
	f("1024", `cpu list "1024": "1024": cpu number above 1023`)
	f("0-99999999999999999999", `cpu list "0-99999999999999999999": "0-99999999999999999999": cpu number above 1023`)
}

func TestContains(t *testing.T) {
	s := CPUSet{0, 1, 2, 3, 8}
	for _, c := range []int{0, 3, 8} {
		assert.True(t, s.Contains(c), c)
	}
	for _, c := range []int{-1, 4, 7, 9, 1000} {
		assert.False(t, s.Contains(c), c)
	}
	assert.False(t, CPUSet(nil).Contains(0))
}

func TestOnlineAndMissing(t *testing.T) {
	online := Online()
	require.NotEmpty(t, online)
	assert.IsIncreasing(t, []int(online))
	assert.Nil(t, Missing(online))
	assert.Nil(t, Missing(nil))

	last := online[len(online)-1]
	assert.Equal(t, CPUSet{MaxCPU}, Missing(CPUSet{online[0], MaxCPU}), "online %s", online)
	if last < MaxCPU {
		assert.Equal(t, CPUSet{last + 1}, Missing(CPUSet{last, last + 1}))
	}

	// Online returns a copy: changing it must not change the next answer.
	online[0] = -5
	assert.NotEqual(t, -5, Online()[0])
}

func TestPinErrors(t *testing.T) {
	assert.Error(t, Pin(nil))
	assert.Error(t, Pin(CPUSet{MaxCPU + 1}))
}
