package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/archiver"
	"github.com/coffer-backup/coffer/internal/check"
	"github.com/coffer-backup/coffer/internal/restorer"
)

// plainProgressInterval is how often --progress writes a line where
// stderr is not a terminal (a log, a pipe).
const plainProgressInterval = 10 * time.Second

// startProgress shows line() on stderr and returns a function that stops
// it: on a terminal it is redrawn in place every half second; elsewhere,
// with --progress (force), it is a plain line every plainProgressInterval,
// with no terminal escapes to clutter a log.
func (g *globalOptions) startProgress(force bool, line func() string) func() {
	tty := isTerminal(os.Stderr)
	if g.quiet || g.json || (!force && !tty) {
		return func() {}
	}
	every, show, clear := 500*time.Millisecond, "\r\033[K%s", "\r\033[K"
	if !tty {
		every, show, clear = plainProgressInterval, "%s\n", ""
		if v := os.Getenv("COFFER_PROGRESS_INTERVAL"); v != "" {
			if d, err := time.ParseDuration(v); err == nil && d > 0 {
				every = d
			}
		}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(os.Stderr, clear)
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, show, line())
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// startJSONStatus prints status() as a JSON line on w every second with
// --json (not with --quiet) and returns a function that stops it.
func (g *globalOptions) startJSONStatus(w io.Writer, status func() any) func() {
	if !g.json || g.quiet {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = printJSONLine(w, status())
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

func backupStatus(start time.Time, p *archiver.Progress) any {
	b, total := p.Bytes.Load(), p.TotalBytes.Load()
	pct := 0.0
	if total > 0 {
		pct = min(float64(b)/float64(total), 1)
	}
	return backupStatusJSON{MessageType: msgStatus, SecondsElapsed: time.Since(start).Seconds(), PercentDone: pct,
		TotalFiles: p.TotalFiles.Load(), FilesDone: p.Files.Load(), TotalBytes: total, BytesDone: b, ErrorCount: p.Errors.Load()}
}

func restoreStatus(start time.Time, p *restorer.Progress) any {
	return restoreStatusJSON{MessageType: msgStatus, SecondsElapsed: time.Since(start).Seconds(), FilesRestored: p.Files.Load(),
		BytesRestored: p.Bytes.Load(), FilesSkipped: p.Skipped.Load(), ErrorCount: p.Errors.Load(),
		TotalFiles: p.TotalFiles.Load(), TotalBytes: p.TotalBytes.Load()}
}

func checkStatus(msgType string, start time.Time, s check.Status) checkStatusJSON {
	return checkStatusJSON{MessageType: msgType, Phase: strings.ReplaceAll(s.Phase.String(), " ", "_"),
		SecondsElapsed: time.Since(start).Seconds(), PercentDone: s.PercentDone(),
		IndexFilesDone: s.IndexFiles, IndexFilesTotal: s.IndexFilesTotal, PacksListed: s.Packs,
		SnapshotsDone: s.Snapshots, SnapshotsTotal: s.SnapshotsTotal, TreesDone: s.Trees,
		PacksReadDone: s.PacksRead, PacksReadTotal: s.PacksReadTotal, BytesReadDone: s.BytesRead, BytesReadTotal: s.BytesReadTotal}
}

// checkProgressLine describes the phase a check that began at start is in.
func checkProgressLine(start time.Time, s check.Status) string {
	var what string
	switch s.Phase {
	case check.PhaseIndex:
		what = fmt.Sprintf("%d/%d index files", s.IndexFiles, s.IndexFilesTotal)
	case check.PhasePacks:
		what = fmt.Sprintf("%d packs", s.Packs)
	case check.PhaseSnapshots:
		what = fmt.Sprintf("%d/%d snapshots, %d trees", s.Snapshots, s.SnapshotsTotal, s.Trees)
	case check.PhaseReadData:
		what = fmt.Sprintf("%d/%d packs, %s/%s (%.0f%%)", s.PacksRead, s.PacksReadTotal,
			formatBytes(s.BytesRead), formatBytes(s.BytesReadTotal), 100*s.PercentDone())
	}
	return fmt.Sprintf("[%s] %s: %s", time.Since(start).Round(time.Second), s.Phase, what)
}

// restoreProgressLine describes a restore that began at start.
func restoreProgressLine(start time.Time, p *restorer.Progress) string {
	return fmt.Sprintf("[%s] %d/%d files, %s/%s restored, %d skipped, %d errors", time.Since(start).Round(time.Second),
		p.Files.Load(), p.TotalFiles.Load(), formatBytes(p.Bytes.Load()), formatBytes(p.TotalBytes.Load()), p.Skipped.Load(), p.Errors.Load())
}

// backupProgressLine describes a backup that began at start.
func backupProgressLine(start time.Time, p *archiver.Progress) string {
	el := time.Since(start)
	b := p.Bytes.Load()
	rate := float64(b) / max(el.Seconds(), 0.001)
	total := p.TotalBytes.Load()
	eta := ""
	if total > b && rate > 0 {
		eta = " ETA " + time.Duration(float64(total-b)/rate*float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s] %d/%d files, %s/%s, %s/s%s, %d errors", el.Round(time.Second), p.Files.Load(), p.TotalFiles.Load(),
		formatBytes(b), formatBytes(total), formatBytes(uint64(rate)), eta, p.Errors.Load())
}

func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.2f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func splitTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		for _, x := range strings.Split(t, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

func absPaths(paths []string) ([]string, error) {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sortStrings(out)
	return out, nil
}
