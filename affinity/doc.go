// Package affinity parses CPU lists ("0-3,8") and pins the calling OS thread
// to a set of CPUs with sched_setaffinity(2).
//
// The balancer runs each receiver's event loop on its own OS thread and may pin
// that thread to the CPUs named by the receiver's cpu setting, as the legacy
// balancer's IPFIX_<STREAM>_BALANCER_TASKSET did. Pinning is per thread, not per
// process:
//
//   - [Pin] locks the calling goroutine to its OS thread
//     (runtime.LockOSThread) and narrows that thread's affinity mask only. The
//     caller must keep the goroutine locked for as long as it runs pinned code,
//     and should let the goroutine exit while still locked: the Go runtime then
//     discards the thread instead of handing a pinned thread to other
//     goroutines.
//   - Threads created later do not inherit the mask: the Go runtime starts new
//     threads from its template thread whenever the creating thread is locked,
//     and other goroutines never run on a locked thread.
//
// A CPU list names CPUs the way the kernel does in
// /sys/devices/system/cpu/online and in Cpus_allowed_list of /proc/<pid>/status:
// comma-separated numbers and inclusive ranges. [Missing] tells which CPUs of a
// list this process cannot run on (a config written for a bigger machine); the
// balancer warns and runs such a receiver unpinned.
//
// Pinning is implemented on Linux only; elsewhere [Pin] returns an error and
// [Online] reports runtime.NumCPU CPUs.
package affinity
