package main

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
)

func TestExitCode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("anything"), 1},
		{usageErrorf("bad flag"), 2},
		{fmt.Errorf("%w: 1 source(s) unreadable", errPartialBackup), 3},
		{fmt.Errorf("open: %w", storage.ErrNoRepository), 10},
		{fmt.Errorf("lock: %w", repository.ErrLocked), 11},
		{errors.Join(errors.New("context"), keyring.ErrWrongPassword), 12},
		{fmt.Errorf("snapshots: %w", repository.ErrRolledBack), 13},
		{fmt.Errorf("%s: %w (2 findings)", "host:1", errTLSPolicy), 20},
		{fmt.Errorf("verify: %w", &auditlog.VerifyError{File: "00000001.jsonl", Line: 3, Seq: 3, Err: auditlog.ErrTampered}), 21},
		{fmt.Errorf("verify: %w", auditlog.ErrTruncated), 21},
		{fmt.Errorf("verify: %w", auditlog.ErrAheadOfHead), 21},
		{fmt.Errorf("verify: %w", auditlog.ErrPartialLine), 21},
		{jobOutcome(api.JobInfo{State: api.StateSucceeded}), 0},
		{jobOutcome(api.JobInfo{State: api.StateWarning}), 3},
		{jobOutcome(api.JobInfo{State: api.StateFailed}), 15},
		{jobOutcome(api.JobInfo{State: api.StateSkipped}), 15},
		{jobOutcome(api.JobInfo{State: api.StateCancelled}), 16},
		{fmt.Errorf("backup: %w", context.Canceled), 130},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// TestExitCodesDocumented: docs/exit-codes.md lists exactly the exit codes
// exitcodes.go defines, and every code defined is one exitCode can return.
func TestExitCodesDocumented(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "exitcodes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	code := map[int]string{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, sp := range gd.Specs {
			vs := sp.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !strings.HasPrefix(name.Name, "exit") || !ok {
					t.Fatalf("exit code %s is not a literal", name.Name)
				}
				n, err := strconv.Atoi(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				code[n] = name.Name
			}
		}
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "exit-codes.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[int]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\|\s*(\d+)\s*\|\s*\S`).FindAllStringSubmatch(string(doc), -1) {
		n, _ := strconv.Atoi(m[1])
		if documented[n] {
			t.Errorf("exit code %d is documented twice", n)
		}
		documented[n] = true
	}
	if len(code) < 10 || len(documented) < 10 {
		t.Fatalf("found %d codes in the code and %d in the doc: the parsers are broken", len(code), len(documented))
	}
	for n, name := range code {
		if !documented[n] {
			t.Errorf("exit code %d (%s) is not in docs/exit-codes.md", n, name)
		}
	}
	for n := range documented {
		if _, ok := code[n]; !ok {
			t.Errorf("docs/exit-codes.md documents exit code %d, which exitcodes.go does not define", n)
		}
	}
}
