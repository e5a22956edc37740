package affinity

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxCPU is the highest CPU number a CPU list may name: CPU_SETSIZE-1 of glibc
// and of golang.org/x/sys/unix.CPUSet.
const MaxCPU = 1023

// CPUSet is a sorted list of distinct CPU numbers, each in 0..MaxCPU. A nil or
// empty CPUSet means "no pinning" to the callers of this package.
type CPUSet []int

// Parse parses a CPU list such as "61", "0-3,8" or " 2 , 5-6 ": comma-separated
// CPU numbers and inclusive ranges, blanks allowed around each part. The result
// is sorted with duplicates removed. An empty (or all-blank) string gives an
// empty set. Errors name the offending part.
func Parse(s string) (CPUSet, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var set CPUSet
	for part := range strings.SplitSeq(s, ",") {
		p := strings.TrimSpace(part)
		if p == "" {
			return nil, fmt.Errorf("cpu list %q: empty part", s)
		}
		lo, hi := p, p
		if i := strings.IndexByte(p, '-'); i >= 0 {
			lo, hi = strings.TrimSpace(p[:i]), strings.TrimSpace(p[i+1:])
		}
		first, err := parseCPU(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %q: %w", s, p, err)
		}
		last, err := parseCPU(hi)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %q: %w", s, p, err)
		}
		if last < first {
			return nil, fmt.Errorf("cpu list %q: %q: range ends before it starts", s, p)
		}
		for c := first; c <= last; c++ {
			set = append(set, c)
		}
	}
	slices.Sort(set)
	return slices.Compact(set), nil
}

func parseCPU(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("missing cpu number")
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("not a cpu number")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > MaxCPU {
		return 0, fmt.Errorf("cpu number above %d", MaxCPU)
	}
	return n, nil
}

// String formats the set as a CPU list in the kernel's format, runs of two or
// more consecutive CPUs as ranges: "0-3,8". The empty set gives "".
func (s CPUSet) String() string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(s[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Contains reports whether cpu is in the set.
func (s CPUSet) Contains(cpu int) bool {
	_, ok := slices.BinarySearch(s, cpu)
	return ok
}

// Missing returns the CPUs of set that this process cannot run on (see
// [Online]), in order; nil when all are available.
func Missing(set CPUSet) CPUSet {
	online := Online()
	var missing CPUSet
	for _, c := range set {
		if !online.Contains(c) {
			missing = append(missing, c)
		}
	}
	return missing
}
