package objstore

import (
	"os"
	"path/filepath"
	"testing"
)

// Every state a crash can leave the layout move in is completed, and a
// repository in the current layout is left alone.
func TestMigrateRepo(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		setup func(dir string) error
		moved bool
		want  string // content of dir/config, "" for none
	}{
		"old layout": {func(d string) error {
			return writeAll(d, map[string]string{"config/config": "c"})
		}, true, "c"},
		"parked, old directory still there": {func(d string) error {
			if err := os.Mkdir(filepath.Join(d, "config"), 0o700); err != nil {
				return err
			}
			return writeAll(d, map[string]string{"config.v1": "c"})
		}, true, "c"},
		"parked, old directory gone": {func(d string) error {
			return writeAll(d, map[string]string{"config.v1": "c"})
		}, true, "c"},
		"created, no config saved yet": {func(d string) error {
			return os.Mkdir(filepath.Join(d, "config"), 0o700)
		}, false, ""},
		"current layout": {func(d string) error {
			return writeAll(d, map[string]string{"config": "c"})
		}, false, "c"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tree, err := os.OpenRoot(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tree.Close() }()
			dir := filepath.Join(tree.Name(), "repo")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := tc.setup(dir); err != nil {
				t.Fatal(err)
			}
			moved, err := migrateRepo(tree, "repo")
			if err != nil || moved != tc.moved {
				t.Fatalf("migrateRepo = %v, %v; want moved %v", moved, err, tc.moved)
			}
			b, err := os.ReadFile(filepath.Join(dir, "config"))
			switch {
			case tc.want == "" && !os.IsNotExist(err):
				t.Errorf("config: %q, %v; want none", b, err)
			case tc.want != "" && (err != nil || string(b) != tc.want):
				t.Errorf("config: %q, %v; want %q", b, err, tc.want)
			}
			if _, err := os.Lstat(filepath.Join(dir, "config.v1")); !os.IsNotExist(err) {
				t.Errorf("parked config left: %v", err)
			}
			if again, err := migrateRepo(tree, "repo"); again || err != nil {
				t.Errorf("second run: %v, %v", again, err)
			}
		})
	}
}

func writeAll(dir string, files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}
