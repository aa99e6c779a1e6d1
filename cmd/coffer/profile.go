package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// startProfile writes a CPU profile to $COFFER_CPUPROFILE when set, for
// developers measuring coffer; it returns the function that stops it.
func startProfile() func() {
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
