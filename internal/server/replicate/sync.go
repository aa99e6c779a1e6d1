package replicate

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
)

// repoSync brings one repository to the target.
type repoSync struct {
	p    *pass
	k    RepoKey
	tr   targetRepo // nil when the target has no copy
	objs map[storage.Handle]objectInfo
	have map[storage.Handle]held
	recs map[storage.Handle]serverdb.ReplicaObject
	src  *atrest.Storage
}

// kindOrder puts the config first, so the copy opens as a repository from
// its first object on, and data before the index and snapshots that
// reference it.
func kindOrder(k storage.Kind) int {
	for i, x := range storage.Kinds {
		if x == k {
			return i
		}
	}
	return len(storage.Kinds)
}

func (rs *repoSync) sync(ctx context.Context) error {
	src, err := rs.p.opts.Source.Open(ctx, rs.k)
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	rs.src = src
	hs := make([]storage.Handle, 0, len(rs.objs))
	for h := range rs.objs {
		hs = append(hs, h)
	}
	sort.Slice(hs, func(i, j int) bool {
		if a, b := kindOrder(hs[i].Kind), kindOrder(hs[j].Kind); a != b {
			return a < b
		}
		return hs[i].Name < hs[j].Name
	})
	for _, h := range hs {
		if err := rs.object(ctx, h, rs.objs[h]); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rs.p.fail(rs.k, h.String(), err)
		}
	}
	if rs.p.opts.ReadBack {
		rs.readBack(ctx, hs)
	}
	return rs.deletions(ctx)
}

// object brings one object over, or checks the copy the target holds.
func (rs *repoSync) object(ctx context.Context, h storage.Handle, info objectInfo) error {
	rec, recorded := rs.recs[h]
	got, there := rs.have[h]
	switch {
	case there && recorded:
		if got.size != rec.Size || got.tag != "" && got.tag != rec.Tag {
			return fmt.Errorf("%w: it lists %d bytes, tag %q; it acknowledged %d bytes, tag %q", ErrMismatch, got.size, got.tag, rec.Size, rec.Tag)
		}
		if info.size != rec.Size {
			return fmt.Errorf("%w: the primary's object has %d bytes, the copy %d", ErrMismatch, info.size, rec.Size)
		}
		if !rec.DeletedAt.IsZero() {
			rec.DeletedAt = time.Time{}
			return rs.p.opts.DB.PutReplicaObject(ctx, rec)
		}
		return nil
	case there:
		return rs.adopt(ctx, h, info, nil)
	}
	if !recorded && destructive(h.Kind) && rs.p.now().Sub(info.mtime) < rs.p.cfg.KeepDeleted {
		rs.p.rep.Held++
		return nil
	}
	if recorded {
		rs.p.log.Warn("the target no longer holds an object it acknowledged; sending it again", "target", rs.p.cfg.Name, "repo", rs.k.String(), "object", h.String())
	}
	return rs.send(ctx, h, info)
}

// destructive reports whether objects of kind record deletions: a
// forgotten snapshot, packs a prune condemned. Readers honour them, so
// they reach the target only after keep-deleted, as deletions do.
func destructive(k storage.Kind) bool {
	return k == storage.KindForgets || k == storage.KindCondemned
}

// loader returns the object's content, read once.
func (rs *repoSync) loader(ctx context.Context, h storage.Handle, data []byte) func() ([]byte, error) {
	return func() ([]byte, error) {
		if data != nil {
			return data, nil
		}
		b, err := rs.src.Load(ctx, h, 0, -1)
		if err != nil {
			return nil, fmt.Errorf("read at the primary: %w", err)
		}
		data = b
		return b, nil
	}
}

// adopt verifies a copy found at the target (left by a killed pass, or
// seeded) and records it.
func (rs *repoSync) adopt(ctx context.Context, h storage.Handle, info objectInfo, data []byte) error {
	o, err := rs.src.Open(ctx, h)
	if err != nil {
		return fmt.Errorf("read at the primary: %w", err)
	}
	sum := o.ContentSHA256()
	sha := hex.EncodeToString(sum[:])
	want, err := rs.tr.expect(sha, rs.loader(ctx, h, data))
	if err != nil {
		return err
	}
	if err := rs.verify(ctx, h, info.size, want); err != nil {
		return err
	}
	rs.p.rep.Adopted++
	return rs.record(ctx, h, info.size, sha, want)
}

// verify compares what the target reports of h with what it must hold.
func (rs *repoSync) verify(ctx context.Context, h storage.Handle, size int64, want string) error {
	gotSize, tag, err := rs.tr.stat(ctx, h)
	if err != nil {
		return fmt.Errorf("verify at the target: %w", err)
	}
	if gotSize != size || tag != want {
		return fmt.Errorf("%w: it reports %d bytes, tag %q; the primary's object has %d bytes, tag %q", ErrMismatch, gotSize, tag, size, want)
	}
	return nil
}

// send copies an object, verifies the copy and records it.
func (rs *repoSync) send(ctx context.Context, h storage.Handle, info objectInfo) error {
	data, err := rs.loader(ctx, h, nil)()
	if err != nil {
		return err
	}
	if int64(len(data)) != info.size {
		return fmt.Errorf("read at the primary: %d bytes, its file holds %d", len(data), info.size)
	}
	err = rs.tr.save(ctx, h, data, rs.p.th)
	if errors.Is(err, storage.ErrExists) {
		return rs.adopt(ctx, h, info, data)
	}
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	sha := sha256Hex(data)
	want, err := rs.tr.expect(sha, rs.loader(ctx, h, data))
	if err != nil {
		return err
	}
	if err := rs.verify(ctx, h, info.size, want); err != nil {
		return err
	}
	rs.p.rep.Sent++
	rs.p.rep.SentBytes += info.size
	return rs.record(ctx, h, info.size, sha, want)
}

func (rs *repoSync) record(ctx context.Context, h storage.Handle, size int64, sha, tag string) error {
	o := serverdb.ReplicaObject{Target: rs.p.cfg.Name, Client: rs.k.Client, Repo: rs.k.Repo, Kind: string(h.Kind), Name: h.Name,
		Size: size, SHA256: sha, Tag: tag, ReplicatedAt: rs.p.now()}
	if err := rs.p.opts.DB.PutReplicaObject(ctx, o); err != nil {
		return err
	}
	rs.recs[h] = o
	rs.have[h] = held{size: size, tag: tag}
	return nil
}

// readBack reads every recorded copy back from the target and compares its
// content with the hash the primary's object has.
func (rs *repoSync) readBack(ctx context.Context, hs []storage.Handle) {
	for _, h := range hs {
		rec, ok := rs.recs[h]
		if !ok || ctx.Err() != nil {
			continue
		}
		b, err := rs.tr.load(ctx, h)
		switch {
		case err != nil:
			rs.p.fail(rs.k, h.String(), fmt.Errorf("read back from the target: %w", err))
		case sha256Hex(b) != rec.SHA256:
			rs.p.fail(rs.k, h.String(), fmt.Errorf("%w: read back, its content's SHA-256 is %s; the primary's is %s", ErrMismatch, sha256Hex(b), rec.SHA256))
		default:
			rs.p.rep.Verified++
		}
	}
}

// deletions applies the primary's deletions to the target once they are
// older than keep-deleted; until then the target keeps the copies.
func (rs *repoSync) deletions(ctx context.Context) error {
	now := rs.p.now()
	for h, rec := range rs.recs {
		if _, ok := rs.objs[h]; ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if rec.DeletedAt.IsZero() {
			rec.DeletedAt = now
			if err := rs.p.opts.DB.PutReplicaObject(ctx, rec); err != nil {
				return err
			}
		}
		if now.Sub(rec.DeletedAt) < rs.p.cfg.KeepDeleted {
			rs.p.rep.Kept++
			continue
		}
		if err := rs.removeCopy(ctx, h); err != nil {
			if errors.Is(err, storage.ErrForbidden) {
				rs.p.rep.Kept++
				rs.p.log.Info("the target refuses to delete an object the primary deleted; it keeps it", "target", rs.p.cfg.Name, "repo", rs.k.String(), "object", h.String())
				continue
			}
			rs.p.fail(rs.k, h.String(), fmt.Errorf("delete at the target: %w", err))
			continue
		}
		if err := rs.p.opts.DB.RemoveReplicaObject(ctx, rec); err != nil {
			return err
		}
		rs.p.rep.Deleted++
	}
	return nil
}

func (rs *repoSync) removeCopy(ctx context.Context, h storage.Handle) error {
	if rs.tr == nil {
		return nil
	}
	if _, ok := rs.have[h]; !ok {
		return nil
	}
	err := rs.tr.remove(ctx, h)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}
