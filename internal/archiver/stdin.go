package archiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/coffer-backup/coffer/internal/chunker"
	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
)

// SnapshotStream backs up the bytes of r as a single file named name (for
// `backup --stdin`): database dumps stream in without temporary files.
func (a *Archiver) SnapshotStream(ctx context.Context, name string, r io.Reader) (*repository.Snapshot, error) {
	if !repository.ValidName([]byte(name)) {
		return nil, fmt.Errorf("invalid file name %q for stdin", name)
	}
	start := time.Now()
	a.repo.StartWriting(ctx)
	ch := chunker.New(r, a.secret, a.params)
	buf := make([]byte, 0, a.params.Max)
	var items []repository.ContentItem
	var size int64
	for {
		data, err := ch.Next(buf[:0])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		size += int64(len(data))
		a.opts.Progress.Bytes.Add(uint64(len(data)))
		id, _, err := a.repo.SaveBlob(ctx, repository.DataBlob, data)
		if err != nil {
			return nil, err
		}
		items = append(items, repository.ContentItem{ID: &id, Size: uint64(len(data))})
	}
	now := time.Now()
	meta := fsmeta.Meta{Type: fsmeta.TypeFile, Mode: 0o600, UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), // #nosec G115 -- ids are 32-bit on Linux
		Size: size, MTimeNs: now.UnixNano(), ATimeNs: now.UnixNano(), CTimeNs: now.UnixNano()}
	tree := &repository.Tree{Nodes: []*repository.Node{{Name: []byte(name), Meta: meta, Content: items}}}
	treeID, err := a.repo.SaveTree(ctx, tree)
	if err != nil {
		return nil, err
	}
	if err := a.repo.Flush(ctx); err != nil {
		return nil, err
	}
	a.opts.Progress.Files.Add(1)
	st := a.repo.Stats()
	sum := repository.SnapshotSummary{BackupStart: start.UTC(), BackupEnd: time.Now().UTC(), FilesNew: 1,
		DataBlobs: st.Blobs[repository.DataBlob], TreeBlobs: st.Blobs[repository.TreeBlob], DataAdded: st.BytesRaw,
		DataAddedPacked: st.BytesPacked, TotalFilesProcessed: 1, TotalBytesProcessed: uint64(size)} // #nosec G115 -- size >= 0
	return &repository.Snapshot{Time: start.UTC(), Tree: treeID, Paths: []string{"/" + name}, Summary: &sum}, nil
}
