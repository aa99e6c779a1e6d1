package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

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
		{fmt.Errorf("backup: %w", context.Canceled), 130},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}
