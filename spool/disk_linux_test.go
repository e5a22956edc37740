package spool

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it
// at cleanup. It needs root (CI runs as root) and fails, not skips, without.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the full-disk test mounts a small tmpfs and needs root: run it as root (CI does)")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "mount tmpfs: %s", out)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestFullDisk: ENOSPC is no crash: messages are dropped and counted, and
// spooling recovers once replay frees space. replayed + dropped == appended.
func TestFullDisk(t *testing.T) {
	dir := mountTmpfs(t, "2m")
	st := makeStream(24000, 1000, 20) // about 6 MB: three times the disk
	s, set := openSpool(t, Config{Dir: dir, SegmentBytes: 256 << 10, BufferBytes: 32 << 20})
	half := len(st.msgs) / 2
	appendAll(t, s, st.msgs[:half])
	require.Eventually(t, func() bool {
		return counter(set, `ipfix_balancer_spool_dropped_messages_total{`+labels+`,reason="disk_full"}`)+
			counter(set, `ipfix_balancer_spool_dropped_messages_total{`+labels+`,reason="write_error"}`)+
			int(s.written()) >= half
	}, 30*time.Second, 10*time.Millisecond, "the writer took the first half")
	full := counter(set, `ipfix_balancer_spool_dropped_messages_total{`+labels+`,reason="disk_full"}`)
	require.Greater(t, full, 0, "a 2 MB disk must have filled")
	got := drainAll(t, s, 2*time.Second)
	// Space is back: the second half is spooled again.
	appendAll(t, s, st.msgs[half:half+2000])
	got2 := drainAll(t, s, 2*time.Second)
	assert.NotEmpty(t, got2.msgs, "spooling resumed after the replay freed the disk")
	dropped := 0
	for _, r := range dropReasons {
		dropped += counter(set, `ipfix_balancer_spool_dropped_messages_total{`+labels+`,reason="`+r+`"}`)
	}
	replayed := counter(set, `ipfix_balancer_spool_replayed_messages_total{`+labels+`}`)
	t.Logf("appended %d replayed %d dropped %d (disk_full %d)", half+2000, replayed, dropped, full)
	assert.Equal(t, len(got.msgs)+len(got2.msgs), replayed)
	assert.Equal(t, half+2000, replayed+dropped, "replayed + dropped == appended")
}
