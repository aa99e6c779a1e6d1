package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/maintenance"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// TestS3RoundTrip drives init, backup, restore, check, forget and prune on
// an s3: location (versitygw on loopback, over https with a private CA
// given by COFFER_CACERT) exactly as on a local path.
func TestS3RoundTrip(t *testing.T) {
	t.Parallel()
	srv := s3test.StartTLS(t)
	e := newEnv(t)
	e.repo = srv.URL("coffer-e2e", "hosts/web01") // init makes the bucket
	e.extra = append(srv.Env(), "COFFER_CACERT="+srv.CAFile)
	e.init()

	src := filepath.Join(e.dir, "src")
	big := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB: several packs, multipart uploads
	writeFile(t, filepath.Join(src, "a.txt"), []byte("hello\n"))
	writeFile(t, filepath.Join(src, "sub", "big"), big)
	var b1 backupSummaryJSON
	e.mustJSON(&b1, "backup", "--repo", e.repo, "--json", src)
	if _, err := os.Stat(filepath.Join(srv.Dir, "coffer-e2e", "hosts", "web01", "config")); err != nil {
		t.Fatalf("the repository is not in the bucket under its prefix: %v", err)
	}

	writeFile(t, filepath.Join(src, "a.txt"), []byte("changed\n"))
	if err := os.Remove(filepath.Join(src, "sub", "big")); err != nil {
		t.Fatal(err)
	}
	var b2 backupSummaryJSON
	e.mustJSON(&b2, "backup", "--repo", e.repo, "--json", src)
	if out := e.must("snapshots", "--repo", e.repo); !strings.Contains(out, b1.SnapshotID[:8]) || !strings.Contains(out, b2.SnapshotID[:8]) {
		t.Fatalf("snapshots does not list both backups:\n%s", out)
	}

	dst := filepath.Join(e.dir, "dst1")
	e.must("restore", b1.SnapshotID, "--repo", e.repo, "--target", dst, "--verify")
	if got, err := os.ReadFile(filepath.Join(dst, src, "sub", "big")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("restored big file differs (%d bytes, %v)", len(got), err)
	}
	e.must("check", "--repo", e.repo, "--read-data")

	e.must("forget", "--repo", e.repo, b1.SnapshotID)
	deleted := 0
	for i := 0; i < 2; i++ {
		var rep maintenance.PruneReport
		e.mustJSON(&rep, "prune", "--repo", e.repo, "--json", "--max-unused", "0", "--safety-margin", "0s", "--clock-skew", "0s")
		deleted += rep.DeletedPacks
	}
	if deleted == 0 {
		t.Error("prune deleted no pack after the snapshot holding the big file was forgotten")
	}
	e.must("check", "--repo", e.repo, "--read-data")
	dst = filepath.Join(e.dir, "dst2")
	e.must("restore", "latest", "--repo", e.repo, "--target", dst)
	if got, err := os.ReadFile(filepath.Join(dst, src, "a.txt")); err != nil || string(got) != "changed\n" {
		t.Fatalf("restored a.txt = %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dst, src, "sub", "big")); !os.IsNotExist(err) {
		t.Errorf("big file restored from the second snapshot: %v", err)
	}
}

// TestS3Errors checks what a user sees for a missing bucket, a missing
// repository, wrong credentials, a location with credentials in it, no
// credentials and an unreachable endpoint: one clear line each, the exit
// codes of the same failures on other backends, never a secret.
func TestS3Errors(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	const secret = "wrong-secret-0123456789"
	cases := []struct {
		name, repo string
		env        []string
		code       int
		want       []string
	}{
		{"missing bucket", srv.URL("no-such-bucket", ""), srv.Env(), exitNoRepository,
			[]string{"bucket no-such-bucket does not exist", "coffer init --repo " + srv.URL("no-such-bucket", "")}},
		{"missing repository", srv.URL(bucket, "none"), srv.Env(), exitNoRepository,
			[]string{"no config object", "coffer init"}},
		{"wrong secret", srv.URL(bucket, ""), []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + secret}, exitError,
			[]string{"refused the credentials", "SignatureDoesNotMatch"}},
		{"unknown key", srv.URL(bucket, ""), []string{"AWS_ACCESS_KEY_ID=nobody", "AWS_SECRET_ACCESS_KEY=" + secret}, exitError,
			[]string{"refused the credentials"}},
		{"no credentials", srv.URL(bucket, ""), nil, exitError,
			[]string{"no S3 credentials", "AWS_ACCESS_KEY_ID"}},
		{"credentials in the location", "s3:http://AKIAX:" + secret + "@" + srv.Endpoint + "/" + bucket, srv.Env(), exitError,
			[]string{"user information", "AWS_ACCESS_KEY_ID"}},
		{"unreachable", "s3:http://127.0.0.1:1/" + bucket, srv.Env(), exitError,
			[]string{"cannot reach the S3 endpoint", "127.0.0.1:1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.extra = c.env
			so, se, code := e.run("snapshots", "--repo", c.repo)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstderr: %s", code, c.code, se)
			}
			for _, w := range c.want {
				if !strings.Contains(se, w) {
					t.Errorf("stderr does not say %q:\n%s", w, se)
				}
			}
			if strings.Contains(so+se, secret) || strings.Contains(so+se, srv.SecretKey) {
				t.Errorf("output shows a secret:\n%s%s", so, se)
			}
		})
	}
}
