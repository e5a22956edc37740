package affinity

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// processCPUs is the affinity mask the process started with. It is read
// while the package initialises, before anything can have pinned a thread: a
// later sched_getaffinity(0) would report the mask of whichever thread the
// caller happens to run on, which may be a pinned one.
var processCPUs = readProcessCPUs()

func readProcessCPUs() CPUSet {
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err == nil {
		if set := fromMask(&mask); len(set) > 0 {
			return set
		}
	}
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err == nil {
		if set, err := Parse(strings.TrimSpace(string(b))); err == nil && len(set) > 0 {
			return set
		}
	}
	set := make(CPUSet, runtime.NumCPU())
	for i := range set {
		set[i] = i
	}
	return set
}

// Online returns the CPUs this process may run on: its affinity mask at start
// (sched_getaffinity(2), which honours taskset, systemd's CPUAffinity= and
// cpusets), else /sys/devices/system/cpu/online. Pinning a thread to a CPU
// outside this set fails.
func Online() CPUSet {
	return slices.Clone(processCPUs)
}

// Pin locks the calling goroutine to its OS thread and restricts that thread
// to the CPUs of set, with sched_setaffinity(2) on the calling thread only.
//
// The caller must keep the goroutine locked (never call
// runtime.UnlockOSThread without first restoring the mask) and should let it
// exit locked, so that the runtime discards the pinned thread rather than
// reuse it. Other threads, and threads created later, keep the process mask.
// On error the thread's mask is unchanged and the goroutine is unlocked again.
func Pin(set CPUSet) error {
	if len(set) == 0 {
		return fmt.Errorf("pin: empty cpu list")
	}
	var mask unix.CPUSet
	for _, c := range set {
		if c < 0 || c > MaxCPU {
			return fmt.Errorf("pin to cpus %s: cpu %d out of range 0-%d", set, c, MaxCPU)
		}
		mask.Set(c)
	}
	runtime.LockOSThread()
	if err := unix.SchedSetaffinity(0, &mask); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("pin to cpus %s: sched_setaffinity: %w", set, err)
	}
	return nil
}

func fromMask(mask *unix.CPUSet) CPUSet {
	var set CPUSet
	for c := 0; c <= MaxCPU; c++ {
		if mask.IsSet(c) {
			set = append(set, c)
		}
	}
	return set
}

// ThreadID is the calling OS thread's id (as in /proc/self/task/<tid>), for logs.
func ThreadID() int { return unix.Gettid() }
