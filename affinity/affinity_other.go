//go:build !linux

package affinity

import (
	"fmt"
	"runtime"
)

// Online returns CPUs 0 to runtime.NumCPU()-1: without sched_getaffinity(2)
// there is no better answer.
func Online() CPUSet {
	set := make(CPUSet, runtime.NumCPU())
	for i := range set {
		set[i] = i
	}
	return set
}

// Pin is not supported on this platform: it returns an error and leaves the
// calling goroutine unlocked.
func Pin(set CPUSet) error {
	return fmt.Errorf("pin to cpus %s: not supported on %s", set, runtime.GOOS)
}

// ThreadID is -1: thread ids are a Linux notion here.
func ThreadID() int { return -1 }
