package s3_test

import (
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/s3"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// TestETagOfSave: the ETag the store reports for what Save wrote is the
// one ETagHash computes, for a single PUT and for multipart uploads with
// a partial last part and with whole parts only; ListTags reports it too.
func TestETagOfSave(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	var seq atomic.Int64
	st := create(t, srv, bucket, &seq, func(c *s3.Config) { c.PartSize = 5 << 20 })
	defer st.Close()
	ctx := context.Background()
	listed := map[string]string{}
	for i, size := range []int{0, 1000, 5 << 20, 12<<20 + 7, 10 << 20} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		h := storage.Handle{Kind: storage.KindData, Name: "ab" + string(rune('a'+i))}
		if err := st.Save(ctx, h, data); err != nil {
			t.Fatal(err)
		}
		e, err := st.NewETagHash(int64(size))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = e.Write(data)
		want := e.Sum()
		got, err := st.StatTag(ctx, h)
		if err != nil || got.ETag != want || got.Size != int64(size) {
			t.Errorf("%d bytes: StatTag = %+v, %v; want ETag %s", size, got, err, want)
		}
		listed[h.Name] = want
	}
	n := 0
	err := st.ListTags(ctx, storage.KindData, func(tag s3.Tag) error {
		n++
		if listed[tag.Name] != tag.ETag {
			t.Errorf("ListTags %s: ETag %s, want %s", tag.Name, tag.ETag, listed[tag.Name])
		}
		return nil
	})
	if err != nil || n != len(listed) {
		t.Fatalf("ListTags: %d objects, %v", n, err)
	}
}
