package repository

import (
	"context"
	"errors"
	"fmt"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/storage"
	"golang.org/x/sync/errgroup"
)

// ErrBlobNotFound is returned when no index names a blob.
var ErrBlobNotFound = errors.New("blob not found in index")

// StartWriting prepares concurrent blob writes. Uploads run in the
// background until Flush; their errors are reported by SaveBlob and Flush.
func (r *Repository) StartWriting(ctx context.Context) {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.packers != nil {
		return
	}
	// One open pack at a time: compression runs concurrently before a blob
	// takes the pack, and sealing is cheap, so one pack bounds memory.
	r.packers = make(chan *PackWriter, 1)
	r.packers <- nil
	r.inflight = map[BlobHandle]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(1) // one pack finishing/uploading while the next fills
	r.uploads, r.upCtx = g, gctx
}

// SaveBlob stores a blob unless the repository already has it. It returns
// the blob's ID and whether it was new. data is not kept after SaveBlob
// returns, so callers may reuse it. Safe for concurrent use.
func (r *Repository) SaveBlob(ctx context.Context, t BlobType, data []byte) (ID, bool, error) {
	id := r.hasher.Sum(data)
	h := BlobHandle{Type: t, ID: id}
	if r.idx.Load().Has(h) {
		return id, false, nil
	}
	r.wmu.Lock()
	if r.inflight[h] {
		r.wmu.Unlock()
		return id, false, nil
	}
	r.inflight[h] = true
	r.wmu.Unlock()

	buf, n, err := encodeBlob(blobBufs.Get(blobBufSize(len(data))), data, r.compress)
	if err != nil {
		return id, false, err
	}
	defer blobBufs.Put(buf)
	var pw *PackWriter
	select {
	case pw = <-r.packers:
	case <-ctx.Done():
		return id, false, ctx.Err()
	case <-r.upCtx.Done():
		return id, false, r.uploadErr()
	}
	if pw == nil {
		var err error
		term, key := r.keys.current()
		pw, err = NewPackWriter(r.cipher, term, key, r.id, r.compress)
		if err != nil {
			r.packers <- nil
			return id, false, err
		}
	}
	if err := pw.addEncoded(t, id, buf, n, len(data)); err != nil {
		r.packers <- nil // the pack is lost; its blobs were never indexed
		r.wmu.Lock()
		delete(r.inflight, h)
		r.wmu.Unlock()
		return id, false, err
	}
	full := pw.Size() >= r.cfg.PackSize
	if full {
		r.packers <- nil
	} else {
		r.packers <- pw
	}
	r.wmu.Lock()
	r.stats.Blobs[t]++
	r.stats.BytesRaw += uint64(len(data))
	r.wmu.Unlock()
	if full {
		// Queued after the next pack is open: while this waits for the
		// upload before it, the other writers go on filling that pack.
		r.upload(pw)
	}
	return id, true, nil
}

func (r *Repository) uploadErr() error {
	if err := r.uploads.Wait(); err != nil {
		return err
	}
	return context.Canceled
}

// upload finishes pw and stores it in the background.
func (r *Repository) upload(pw *PackWriter) {
	r.uploads.Go(func() error {
		// Uploads run one at a time (StartWriting), so they share one
		// read-back scratch and one pack buffer.
		entries, size, err := r.commitPack(r.upCtx, pw, &r.upScratch)
		if err != nil {
			return err
		}
		r.idx.Load().AddPending(pw.ID, entries)
		r.wmu.Lock()
		r.written = append(r.written, IndexPack{ID: pw.ID, Blobs: entries})
		r.stats.BytesPacked += uint64(size) // #nosec G115 -- a pack size, not negative
		r.stats.Packs++
		for _, e := range entries {
			delete(r.inflight, BlobHandle{e.Type, e.ID})
		}
		r.wmu.Unlock()
		return nil
	})
}

// commitScratch is memory a pack commit reuses: the read-back check's
// buffers, and the assembled pack for storage that takes objects in memory.
type commitScratch struct {
	verify verifyScratch
	stage  []byte // finishedPack's copy buffer
	pack   []byte
}

// commitPack finishes pw, reads every blob back from the spill file and
// checks it (decrypt, decompress, hash: the restic #4523 guard), then
// stores the pack. Storage that can stream (storage.StreamSaver) gets the
// pack straight from the spill file; other storage gets it assembled in
// scratch.pack. It returns the pack's entries and size; the pack is in no
// index yet.
func (r *Repository) commitPack(ctx context.Context, pw *PackWriter, scratch *commitScratch) ([]PackEntry, int64, error) {
	p, err := pw.finishStream()
	if err != nil {
		return nil, 0, err
	}
	defer p.Close()
	p.stage = scratch.stage
	defer func() { scratch.stage = p.stage }()
	if err := p.verify(r.keys.lookup, r.id, r.hasher, &scratch.verify); err != nil {
		return nil, 0, fmt.Errorf("read-back check of new pack failed, nothing was committed: %w", err)
	}
	h := storage.Handle{Kind: storage.KindData, Name: pw.ID.String()}
	if ss, ok := r.st.(storage.StreamSaver); ok {
		err = ss.SaveStream(ctx, h, p, p.Size())
	} else {
		var data []byte
		if data, err = p.Bytes(scratch.pack); err == nil {
			scratch.pack = data[:0]
			err = r.st.Save(ctx, h, data)
		}
	}
	if err != nil {
		return nil, 0, err // names the pack already
	}
	return p.entries, p.Size(), nil
}

// Flush uploads all open packs, waits for every upload and writes an index
// file naming the new packs. After Flush returns nil, every blob SaveBlob
// returned is durably stored and indexed. It must not run concurrently with
// SaveBlob: call it once every SaveBlob has returned.
func (r *Repository) Flush(ctx context.Context) error {
	r.wmu.Lock()
	started := r.packers != nil
	r.wmu.Unlock()
	if !started {
		return nil
	}
	n := cap(r.packers)
	for i := 0; i < n; i++ {
		var pw *PackWriter
		select {
		case pw = <-r.packers:
		case <-ctx.Done():
			return ctx.Err()
		}
		if pw != nil && pw.Count() > 0 {
			r.upload(pw)
		}
	}
	err := r.uploads.Wait()
	r.upScratch = commitScratch{}
	r.wmu.Lock()
	r.packers = nil
	written := r.written
	r.written = nil
	r.wmu.Unlock()
	if err != nil {
		return err
	}
	if len(written) == 0 {
		return nil
	}
	if _, _, err := r.SaveIndexSet(ctx, nil, written, DefaultIndexFileBlobs); err != nil {
		return err
	}
	return nil
}

// LoadBlob returns a blob's plaintext after checking its keyed hash. If one
// copy is damaged, other copies are tried.
func (r *Repository) LoadBlob(ctx context.Context, t BlobType, id ID) ([]byte, error) {
	return r.LoadBlobInto(ctx, t, id, nil)
}

// LoadBlobInto is LoadBlob storing the plaintext in buf's backing array when
// it is large enough and the blob is compressed (buf's contents are
// overwritten either way), so that a caller can reuse its buffers.
func (r *Repository) LoadBlobInto(ctx context.Context, t BlobType, id ID, buf []byte) ([]byte, error) {
	locs := r.idx.Load().Lookup(BlobHandle{Type: t, ID: id})
	if len(locs) == 0 {
		return nil, fmt.Errorf("%s blob %s: %w", t, id.Short(), ErrBlobNotFound)
	}
	var errs []error
	for _, l := range locs {
		b, err := r.loadBlobAt(ctx, id, l, buf)
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (r *Repository) loadBlobAt(ctx context.Context, id ID, l BlobLocation, buf []byte) ([]byte, error) {
	h := storage.Handle{Kind: storage.KindData, Name: l.Pack.String()}
	pr, err := r.packReader(ctx, l.Pack)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	if r.packs != nil {
		s, err := r.packs.slice(ctx, r.st, l.Pack, int64(l.Offset), int64(l.Length))
		if err != nil {
			return nil, err
		}
		sealed = append([]byte(nil), s...) // decrypted in place below; the cache stays intact
	} else {
		sealed, err = r.st.Load(ctx, h, int64(l.Offset), int64(l.Length))
		if err != nil {
			return nil, fmt.Errorf("load blob %s from pack %s: %w", id.Short(), l.Pack.Short(), err)
		}
	}
	e := PackEntry{Type: l.Type, ID: id, Offset: l.Offset, Length: l.Length, RawLen: l.RawLen}
	// Load returns a buffer we own: decrypt in place.
	var inPlace []byte
	if len(sealed) >= crypto.NonceSize {
		inPlace = sealed[crypto.NonceSize:crypto.NonceSize]
	}
	plain, _, err := pr.openBlob(e, sealed, inPlace, buf[:0])
	if err != nil {
		return nil, err
	}
	if got := r.hasher.Sum(plain); got != id {
		return nil, fmt.Errorf("blob %s in pack %s: %w: content hashes to %s", id.Short(), l.Pack.Short(), ErrCorruptPack, got.Short())
	}
	return plain, nil
}

// packReader returns a reader for a pack's blobs, caching parsed headers.
func (r *Repository) packReader(ctx context.Context, pack ID) (*PackReader, error) {
	r.prmu.Lock()
	pr, ok := r.readers[pack]
	r.prmu.Unlock()
	if ok {
		return pr, nil
	}
	var hdr []byte
	var err error
	if r.packs != nil {
		hdr, err = r.packs.slice(ctx, r.st, pack, 0, crypto.HeaderSize)
	} else {
		hdr, err = r.st.Load(ctx, storage.Handle{Kind: storage.KindData, Name: pack.String()}, 0, crypto.HeaderSize)
	}
	if err != nil {
		return nil, err // names the pack already
	}
	pr, err = NewPackReader(pack, hdr, r.keys.lookup, r.id)
	if err != nil {
		return nil, err
	}
	r.prmu.Lock()
	if r.readers == nil || len(r.readers) > 4096 {
		r.readers = map[ID]*PackReader{}
	}
	r.readers[pack] = pr
	r.prmu.Unlock()
	return pr, nil
}
