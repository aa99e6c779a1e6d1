package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/coffer-backup/coffer/internal/archiver"
)

// fileReporter returns backup's per-file callback for -v (new and
// modified files) and -vv (unchanged ones too), or nil, which keeps the
// archiver's hot path free of it.
func (g *globalOptions) fileReporter(w io.Writer, level int) func(string, archiver.FileStatus) {
	if level == 0 || g.quiet {
		return nil
	}
	var mu sync.Mutex
	return func(path string, s archiver.FileStatus) {
		if s == archiver.FileUnchanged && level < 2 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if g.json {
			_ = printJSONLine(w, verboseStatusJSON{MessageType: "verbose_status", Action: s.String(), Item: path})
			return
		}
		fmt.Fprintf(w, "%-9s %s\n", s, path)
	}
}
