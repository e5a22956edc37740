package affinity

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// threadCPUs reads the kernel's view of one thread's affinity mask.
func threadCPUs(t testing.TB, tid int) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/status", tid))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	require.NoError(t, sc.Err())
	t.Fatalf("no Cpus_allowed_list in /proc/self/task/%d/status", tid)
	return ""
}

// TestPin pins the test goroutine's thread to each CPU this process may run
// on (and then to all of them), checks the kernel's record of that thread, and
// that the other threads keep their mask.
func TestPin(t *testing.T) {
	online := Online()
	require.NotEmpty(t, online)

	// Keep the goroutine on this thread until the original mask is back, so
	// no pinned thread returns to the runtime's pool, even when a require
	// below ends the test early (deferred calls run on runtime.Goexit too).
	runtime.LockOSThread()
	var saved unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &saved))
	tid := unix.Gettid()
	defer func() {
		assert.NoError(t, unix.SchedSetaffinity(0, &saved))
		assert.Equal(t, online.String(), threadCPUs(t, tid))
		runtime.UnlockOSThread()
	}()

	for _, c := range online {
		set := CPUSet{c}
		require.NoError(t, Pin(set))
		assert.Equal(t, tid, unix.Gettid(), "goroutine moved to another thread")
		assert.Equal(t, set.String(), threadCPUs(t, tid))
		runtime.UnlockOSThread() // Pin nests one LockOSThread per call.
	}
	require.NoError(t, Pin(online))
	assert.Equal(t, online.String(), threadCPUs(t, tid))
	runtime.UnlockOSThread()

	// Pinning one thread leaves the main thread of the process alone.
	require.NoError(t, Pin(CPUSet{online[0]}))
	runtime.UnlockOSThread()
	if tid != unix.Getpid() {
		assert.Equal(t, online.String(), threadCPUs(t, unix.Getpid()))
	}
	// The set the package reports does not follow the pinned thread.
	assert.Equal(t, online, Online())
}

func TestPinUnavailableCPU(t *testing.T) {
	missing := Missing(CPUSet{MaxCPU})
	require.Equal(t, CPUSet{MaxCPU}, missing, "test needs a machine without cpu %d", MaxCPU)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &before))
	err := Pin(missing)
	require.NoError(t, unix.SchedGetaffinity(0, &after))
	assert.Equal(t, before, after, "failed Pin changed the mask")
	assert.ErrorIs(t, err, unix.EINVAL)
	assert.EqualError(t, err, "pin to cpus 1023: sched_setaffinity: invalid argument")
}
