package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"time"
)

// startProfile writes a CPU profile to $COFFER_CPUPROFILE and an execution
// trace to $COFFER_TRACE when set, for developers measuring coffer; it returns the function that stops it.
func startProfile() func() {
	if mp := os.Getenv("COFFER_MEMPROFILE"); mp != "" {
		// Heap snapshots once a second (the last one survives), to find
		// what holds memory at the peak.
		go func() {
			for range time.Tick(time.Second) {
				if f, err := os.Create(mp); err == nil { // #nosec G304 G703 -- developer-chosen profile path
					_ = pprof.WriteHeapProfile(f)
					_ = f.Close()
				}
			}
		}()
	}
	stopTrace := func() {}
	if tp := os.Getenv("COFFER_TRACE"); tp != "" {
		// An execution trace, for finding where the cores sit idle.
		if f, err := os.Create(tp); err == nil { // #nosec G304 G703 -- developer-chosen trace path
			if trace.Start(f) == nil {
				stopTrace = func() { trace.Stop(); _ = f.Close() }
			} else {
				_ = f.Close()
			}
		}
	}
	path := os.Getenv("COFFER_CPUPROFILE")
	if path == "" {
		return stopTrace
	}
	f, err := os.Create(path) // #nosec G304 G703 -- developer-chosen profile path
	if err != nil {
		return stopTrace
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return stopTrace
	}
	return func() {
		stopTrace()
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "coffer: cpu profile: %v\n", err)
		}
	}
}
