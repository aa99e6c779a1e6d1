package fusefs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/coffer-backup/coffer/internal/repository"
)

// ErrBadContent is returned for a file whose content items do not add up
// to its recorded size.
var ErrBadContent = errors.New("file content does not match its size")

// Repo is what the file system reads (satisfied by *repository.Repository
// with its index loaded).
type Repo interface {
	LoadTree(ctx context.Context, id repository.ID) (*repository.Tree, error)
	LoadBlobInto(ctx context.Context, t repository.BlobType, id repository.ID, buf []byte) ([]byte, error)
}

// content reads a file's bytes at any offset from its content items.
type content struct {
	items  []repository.ContentItem
	starts []int64 // offset of each item's first byte
	size   int64
}

func newContent(n *repository.Node) (*content, error) {
	c := &content{items: n.Content, starts: make([]int64, len(n.Content))}
	var off uint64
	for i, it := range n.Content {
		c.starts[i] = int64(off) // #nosec G115 -- bounded by the check below
		next := off + it.Size + it.Hole
		if next < off || next > 1<<62 || (it.ID == nil && it.Size > 0) {
			return nil, fmt.Errorf("%w: %s", ErrBadContent, n.Name)
		}
		off = next
	}
	if int64(off) != n.Size { // #nosec G115 -- off <= 1<<62
		return nil, fmt.Errorf("%w: %s holds %d bytes, records %d", ErrBadContent, n.Name, off, n.Size)
	}
	c.size = n.Size
	return c, nil
}

// blobCache keeps the last blob an open file read, so sequential reads
// smaller than a blob load it once. One blob per open file bounds memory.
type blobCache struct {
	mu   sync.Mutex
	id   repository.ID
	data []byte
	ok   bool
}

// readAt fills p from off and returns how many bytes it read: fewer than
// len(p) only at the end of the file.
func (c *content) readAt(ctx context.Context, r Repo, cache *blobCache, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= c.size {
		return 0, nil
	}
	n := 0
	i := sort.Search(len(c.starts), func(i int) bool { return c.starts[i] > off }) - 1
	for ; i >= 0 && i < len(c.items) && n < len(p); i++ {
		it := c.items[i]
		in := off + int64(n) - c.starts[i] // offset within this item
		size := int64(it.Size)             // #nosec G115 -- item sizes are bounded by newContent
		if in < size {
			k, err := cache.copyAt(ctx, r, it, p[n:], in)
			if err != nil {
				return n, err
			}
			n += k
			in += int64(k)
		}
		if in >= size {
			k := max(0, min(int64(len(p)-n), size+int64(it.Hole)-in)) // #nosec G115 -- as above
			clear(p[n : n+int(k)])
			n += int(k)
		}
	}
	return n, nil
}

// copyAt copies the data of it from offset in into dst, from the cache or
// the repository, and returns how many bytes it copied.
func (b *blobCache) copyAt(ctx context.Context, r Repo, it repository.ContentItem, dst []byte, in int64) (int, error) {
	if it.ID == nil {
		return 0, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ok || b.id != *it.ID {
		d, err := r.LoadBlobInto(ctx, repository.DataBlob, *it.ID, b.data)
		if err != nil {
			b.ok = false
			return 0, err
		}
		if uint64(len(d)) != it.Size {
			b.ok = false
			return 0, fmt.Errorf("%w: blob %s holds %d bytes, tree says %d", ErrBadContent, it.ID.Short(), len(d), it.Size)
		}
		b.id, b.data, b.ok = *it.ID, d, true
	}
	return copy(dst, b.data[in:]), nil
}
