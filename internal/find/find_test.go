package find

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
)

// trees is a TreeLoader that counts loads.
type trees struct {
	m     map[repository.ID]*repository.Tree
	loads []repository.ID
}

func (t *trees) LoadTree(_ context.Context, id repository.ID) (*repository.Tree, error) {
	t.loads = append(t.loads, id)
	tr, ok := t.m[id]
	if !ok {
		return nil, repository.ErrBlobNotFound
	}
	return tr, nil
}

var day = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func file(name string, age int) *repository.Node {
	return &repository.Node{Name: []byte(name), Meta: fsmeta.Meta{Type: fsmeta.TypeFile, MTimeNs: day.AddDate(0, 0, age).UnixNano()}}
}

func (t *trees) dir(name string, kids ...*repository.Node) *repository.Node {
	var id repository.ID
	id[0] = byte(len(t.m) + 1)
	t.m[id] = &repository.Tree{Nodes: kids}
	return &repository.Node{Name: []byte(name), Meta: fsmeta.Meta{Type: fsmeta.TypeDir}, Subtree: &id}
}

// sample: /home/a/{x.go,Notes.TXT}, /home/b/y.go, /etc/{hosts,ssl/cert.pem}
func sample() (*trees, repository.ID) {
	t := &trees{m: map[repository.ID]*repository.Tree{}}
	home := t.dir("home", t.dir("a", file("Notes.TXT", 3), file("x.go", 1)), t.dir("b", file("y.go", 5)))
	etc := t.dir("etc", file("hosts", 0), t.dir("ssl", file("cert.pem", 2)))
	root := t.dir("", etc, home)
	return t, *root.Subtree
}

func run(t *testing.T, o Options) ([]string, *trees) {
	t.Helper()
	tr, root := sample()
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = f.Tree(context.Background(), tr, root, func(p string, _ *repository.Node) error {
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, tr
}

func TestFind(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Patterns: []string{"*.go"}}, "/home/a/x.go /home/b/y.go"},
		{Options{Patterns: []string{"/home/*/x.go", "hosts"}}, "/etc/hosts /home/a/x.go"},
		{Options{Patterns: []string{"ssl"}}, "/etc/ssl /etc/ssl/cert.pem"},
		{Options{Patterns: []string{"notes.txt"}}, ""},
		{Options{Patterns: []string{"notes.txt"}, IgnoreCase: true}, "/home/a/Notes.TXT"},
		{Options{Patterns: []string{"*.go"}, Oldest: day.AddDate(0, 0, 2)}, "/home/b/y.go"},
		{Options{Newest: day.AddDate(0, 0, 1)}, "/etc /etc/hosts /etc/ssl /home /home/a /home/a/x.go /home/b"},
	} {
		got, _ := run(t, tc.o)
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.o, got, tc.want)
		}
	}
}

func TestFindReadsOnlyWhereMatchesMayBe(t *testing.T) {
	t.Parallel()
	_, tr := run(t, Options{Patterns: []string{"/etc/hosts"}})
	// The root and /etc only: /etc/ssl and /home cannot hold a match.
	if len(tr.loads) != 2 {
		t.Fatalf("loaded %d trees, want 2", len(tr.loads))
	}
}

func TestFindErrors(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"!x", "a/../b", "[z-a]"} {
		if _, err := New(Options{Patterns: []string{p}}); !errors.Is(err, filter.ErrBadPattern) {
			t.Errorf("%q: got %v", p, err)
		}
	}
	tr, root := sample()
	clear(tr.m)
	f, _ := New(Options{})
	if err := f.Tree(context.Background(), tr, root, func(string, *repository.Node) error { return nil }); !errors.Is(err, repository.ErrBlobNotFound) {
		t.Fatalf("missing tree: %v", err)
	}
	tr, root = sample()
	stop := errors.New("stop")
	var n int
	err := f.Tree(context.Background(), tr, root, func(string, *repository.Node) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("callback error: %v after %d calls", err, n)
	}
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	loc := time.FixedZone("X", 3600)
	for s, want := range map[string]time.Time{
		"2024-02-03":                time.Date(2024, 2, 3, 0, 0, 0, 0, loc),
		"2024-02-03 04:05":          time.Date(2024, 2, 3, 4, 5, 0, 0, loc),
		"2024-02-03 04:05:06":       time.Date(2024, 2, 3, 4, 5, 6, 0, loc),
		"2024-02-03T04:05:06.5Z":    time.Date(2024, 2, 3, 4, 5, 6, 5e8, time.UTC),
		"2024-02-03T04:05:06+02:00": time.Date(2024, 2, 3, 2, 5, 6, 0, time.UTC),
	} {
		got, err := ParseTime(s, loc)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: got %v %v, want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "yesterday", "2024-13-01", "2024-02-03 25:00"} {
		if _, err := ParseTime(s, loc); !errors.Is(err, ErrBadTime) {
			t.Errorf("%q: got %v", s, err)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2024-02-03", "2024-02-03 04:05:06", "2024-02-03T04:05:06Z", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s, time.UTC)
		if err != nil {
			if !errors.Is(err, ErrBadTime) || !got.IsZero() {
				t.Fatalf("%q: %v %v", s, got, err)
			}
			return
		}
		// Whatever parses, parses again the same from its RFC 3339 form.
		again, err := ParseTime(got.Format(time.RFC3339Nano), time.UTC)
		if err != nil || !again.Equal(got) {
			if got.Year() >= 0 && got.Year() <= 9999 {
				t.Fatalf("%q: %v does not round-trip: %v %v", s, got, again, err)
			}
		}
	})
}

func TestEmptyPatternsMatchAll(t *testing.T) {
	t.Parallel()
	got, _ := run(t, Options{})
	if len(got) != 10 || !slices.IsSorted(got[:2]) {
		t.Fatalf("got %v", got)
	}
}
