//go:build linux

package local

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
)

const killEnv = "COFFER_LOCAL_KILL_HELPER"

// killName is the deterministic name of the i-th object of writer g in a round.
func killName(round, g, i int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%d", round, g, i))
	return hex.EncodeToString(sum[:20])
}

// killSize derives an object's size from its name, so a truncated object
// whose prefix is intact still fails verification.
func killSize(name string) int {
	b, _ := hex.DecodeString(name[:4])
	return 1<<10 + (int(b[0])<<8|int(b[1]))%768<<10
}

// TestKillHelper is the writer process TestKillDuringSave kills. It saves
// objects from several goroutines until it is killed.
func TestKillHelper(t *testing.T) {
	spec := os.Getenv(killEnv)
	if spec == "" {
		t.Skip("helper process for TestKillDuringSave")
	}
	roundStr, dir, _ := strings.Cut(spec, ":")
	round, err := strconv.Atoi(roundStr)
	if err != nil {
		t.Fatal(err)
	}
	// Many small writes per object: a kill often lands mid-object.
	writeChunk = 4 << 10
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				k := storage.KindData
				if i%3 == 2 {
					k = storage.KindIndex
				}
				h := storage.Handle{Kind: k, Name: killName(round, g, i)}
				if err := l.Save(ctx, h, storagetest.Content(h.String(), killSize(h.Name))); err != nil {
					fmt.Fprintln(os.Stderr, "helper:", err)
					os.Exit(3)
				}
			}
		}()
	}
	wg.Wait()
}

func countObjects(t *testing.T, l *Local) int {
	t.Helper()
	n := 0
	for _, k := range []storage.Kind{storage.KindData, storage.KindIndex} {
		if err := l.List(ctx, k, func(storage.FileInfo) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestKillDuringSave kills a process with SIGKILL while it saves many
// objects, several times, and then checks that every listed object is
// complete and correct: a killed Save leaves at most an unlisted temporary file.
func TestKillDuringSave(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns writer processes")
	}
	l := newRepo(t)
	save(t, l, storage.KindConfig, "config", []byte("cfg"))
	const rounds = 5
	leftovers := 0
	for round := 0; round < rounds; round++ {
		before := countObjects(t, l)
		target := before + 40
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$") // #nosec G204 G702 -- re-executes this test binary
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%s", killEnv, round, l.dir))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for countObjects(t, l) < target && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("writer was not killed by SIGKILL but ended with %v", err)
		}
		leftovers += len(tempFiles(t, l.dir))
		if countObjects(t, l) == before {
			t.Fatalf("round %d: the writer saved nothing before it was killed", round)
		}

		r, err := Open(l.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []storage.Kind{storage.KindData, storage.KindIndex} {
			if err := r.List(ctx, k, func(fi storage.FileInfo) error {
				h := storage.Handle{Kind: k, Name: fi.Name}
				want := killSize(fi.Name)
				if fi.Size != int64(want) {
					t.Errorf("%v listed with %d bytes, want %d", h, fi.Size, want)
				}
				b, err := r.Load(ctx, h, 0, -1)
				if err != nil {
					return err
				}
				if string(b) != string(storagetest.Content(h.String(), want)) {
					t.Errorf("%v: content is not what was saved", h)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d temporary files left by killed writers over %d rounds", leftovers, rounds)
	if _, err := l.CleanTemp(0); err != nil {
		t.Fatal(err)
	}
	if tmps := tempFiles(t, l.dir); len(tmps) != 0 {
		t.Errorf("CleanTemp left %v", tmps)
	}
}
