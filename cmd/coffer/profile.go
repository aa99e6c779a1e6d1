package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"time"
)

// startProfile writes a CPU profile to $COFFER_CPUPROFILE when set, for
// developers measuring coffer; it returns the function that stops it.
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
	path := os.Getenv("COFFER_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path) // #nosec G304 G703 -- developer-chosen profile path
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "coffer: cpu profile: %v\n", err)
		}
	}
}
