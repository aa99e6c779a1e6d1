// Package find searches snapshot trees for entries by name or path pattern
// and modification time, as restic's find does.
package find

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/repository"
)

// ErrBadTime is returned by ParseTime for a time it cannot read.
var ErrBadTime = errors.New("invalid time")

// Options say what to find. Zero values: see each field.
type Options struct {
	// Patterns are restic-style globs (docs/filters.md): one without "/"
	// matches a name at any depth, one starting with "/" a path from the
	// snapshot root; everything below a matching directory matches too.
	// An entry matching any pattern is found. None: everything matches.
	Patterns []string
	// IgnoreCase matches patterns and paths case-insensitively.
	IgnoreCase bool
	// Oldest and Newest bound the modification time of what is found,
	// inclusively (zero: no bound).
	Oldest, Newest time.Time
}

// Finder is compiled Options; it is safe for concurrent use.
type Finder struct {
	m              *filter.Matcher
	fold           bool
	oldest, newest int64
	bounded        bool
}

// New compiles o. A malformed pattern fails with filter.ErrBadPattern.
func New(o Options) (*Finder, error) {
	pats := o.Patterns
	if o.IgnoreCase {
		pats = make([]string, len(o.Patterns))
		for i, p := range o.Patterns {
			pats[i] = strings.ToLower(p)
		}
	}
	for _, p := range pats {
		if strings.HasPrefix(p, "!") {
			return nil, fmt.Errorf("%w: %q: find takes no negated patterns", filter.ErrBadPattern, p)
		}
	}
	m, err := filter.New(pats)
	if err != nil {
		return nil, err
	}
	f := &Finder{m: m, fold: o.IgnoreCase, oldest: minInt64, newest: maxInt64}
	if !o.Oldest.IsZero() {
		f.oldest, f.bounded = o.Oldest.UnixNano(), true
	}
	if !o.Newest.IsZero() {
		f.newest, f.bounded = o.Newest.UnixNano(), true
	}
	return f, nil
}

const (
	minInt64 = -1 << 63
	maxInt64 = 1<<63 - 1
)

// TreeLoader loads tree blobs (satisfied by *repository.Repository).
type TreeLoader interface {
	LoadTree(ctx context.Context, id repository.ID) (*repository.Tree, error)
}

// Func is called for each entry found, with its slash-separated path from
// the snapshot root ("/etc/hosts"). An error stops the search and is
// returned.
type Func func(path string, n *repository.Node) error

// Tree calls fn for every entry below tree that matches, depth-first in
// name order, reading only the directories where a match is possible.
func (f *Finder) Tree(ctx context.Context, r TreeLoader, tree repository.ID, fn Func) error {
	return f.walk(ctx, r, "", tree, fn)
}

func (f *Finder) walk(ctx context.Context, r TreeLoader, prefix string, id repository.ID, fn Func) error {
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		return err
	}
	for _, n := range t.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := prefix + "/" + string(n.Name)
		mp := p
		if f.fold {
			mp = strings.ToLower(p)
		}
		matched := f.m.Empty() || f.m.Match(mp)
		if matched && f.timeOK(n) {
			if err := fn(p, n); err != nil {
				return err
			}
		}
		if n.Subtree != nil && (matched || f.m.ChildMayMatch(mp)) {
			if err := f.walk(ctx, r, p, *n.Subtree, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *Finder) timeOK(n *repository.Node) bool {
	return !f.bounded || (n.MTimeNs >= f.oldest && n.MTimeNs <= f.newest)
}

// timeLayouts are the forms ParseTime accepts, as restic's find does, plus
// RFC 3339.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"}

// ParseTime reads a time as "2006-01-02", "2006-01-02 15:04",
// "2006-01-02 15:04:05" (in loc) or RFC 3339.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w %q: want YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS] or RFC 3339", ErrBadTime, s)
}
