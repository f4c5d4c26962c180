// Package memwatch measures a test's memory: the peak Go heap in use, sampled, and the
// process's peak RSS (VmHWM) since the watch began.
package memwatch

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Start samples the Go heap every interval until the returned function is called, which
// returns the peak heap in use and the peak RSS. It resets the kernel's peak-RSS mark first, so
// VmHWM covers the watch only (best effort: parallel tests share the process). It collects
// garbage first, so the heap the caller left behind does not count.
func Start(interval time.Duration) (stop func() (peakHeap, peakRSS uint64)) {
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	var peak atomic.Uint64
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-quit:
				return
			case <-time.After(interval):
			}
		}
	}()
	return func() (uint64, uint64) {
		close(quit)
		<-done
		return peak.Load(), PeakRSS()
	}
}

// PeakRSS is the process's VmHWM in bytes (0 where /proc is not readable).
func PeakRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
