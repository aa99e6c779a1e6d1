package repository

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/padding"
)

// ErrCorruptIndex reports an index file that does not parse.
var ErrCorruptIndex = errors.New("index is corrupt")

// IndexFile is the decoded content of one index object (docs/format.md §6).
type IndexFile struct {
	Supersedes []ID
	Packs      []IndexPack
}

// IndexPack lists the blobs of one pack.
type IndexPack struct {
	ID    ID
	Blobs []PackEntry
}

// maxIndexEntries bounds a decoded index so hostile input cannot allocate
// unbounded memory beyond what its own length implies.
const maxIndexEntries = 1 << 26

// Encode serialises the index file's plaintext.
func (f *IndexFile) Encode() []byte {
	n := 1 + 4 + len(f.Supersedes)*IDSize + 4
	for _, p := range f.Packs {
		n += IDSize + 4 + len(p.Blobs)*packEntrySize
	}
	b := make([]byte, 0, n)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.Supersedes))) // #nosec G115 -- 2^32 superseded 32-byte IDs would need 128 GiB in memory
	for _, id := range f.Supersedes {
		b = append(b, id[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.Packs))) // #nosec G115 -- 2^32 packs would need over 128 GiB of IDs in memory
	for _, p := range f.Packs {
		b = append(b, p.ID[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(p.Blobs))) // #nosec G115 -- a pack is under the 4 GiB pack size limit and each blob takes at least crypto.Overhead bytes
		for _, e := range p.Blobs {
			b = e.encode(b)
		}
	}
	return b
}

// DecodeIndexFile parses an index file's plaintext strictly.
func DecodeIndexFile(b []byte) (*IndexFile, error) {
	bad := func(what string) (*IndexFile, error) {
		return nil, fmt.Errorf("%w: %s", ErrCorruptIndex, what)
	}
	if len(b) < 9 || b[0] != 1 {
		return bad("bad version or truncated")
	}
	p := b[1:]
	take := func(n int) ([]byte, bool) {
		if n < 0 || len(p) < n {
			return nil, false
		}
		x := p[:n]
		p = p[n:]
		return x, true
	}
	u32 := func() (int, bool) {
		x, ok := take(4)
		if !ok {
			return 0, false
		}
		return int(binary.BigEndian.Uint32(x)), true
	}
	f := &IndexFile{}
	ns, ok := u32()
	if !ok || ns > len(p)/IDSize {
		return bad("supersedes count")
	}
	for i := 0; i < ns; i++ {
		x, _ := take(IDSize)
		f.Supersedes = append(f.Supersedes, ID(x))
	}
	np, ok := u32()
	if !ok || np > len(p)/(IDSize+4) {
		return bad("pack count")
	}
	total := 0
	for i := 0; i < np; i++ {
		x, ok := take(IDSize)
		if !ok {
			return bad("truncated pack ID")
		}
		pk := IndexPack{ID: ID(x)}
		nb, ok := u32()
		if !ok || nb > len(p)/packEntrySize {
			return bad("blob count")
		}
		total += nb
		if total > maxIndexEntries {
			return bad("too many entries")
		}
		pk.Blobs = make([]PackEntry, 0, nb)
		for j := 0; j < nb; j++ {
			x, _ := take(packEntrySize)
			e, err := decodeEntry(x)
			if err != nil {
				return bad(err.Error())
			}
			pk.Blobs = append(pk.Blobs, e)
		}
		f.Packs = append(f.Packs, pk)
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	return f, nil
}

// indexRecord is one blob in the in-memory index: 52 bytes with padding,
// which keeps memory under 64 bytes per blob (docs/format.md §6).
type indexRecord struct {
	id     ID
	pack   uint32 // position in MasterIndex.packs
	offset uint32
	length uint32
	rawLen uint32
	typ    BlobType
}

// BlobLocation says where a blob is stored.
type BlobLocation struct {
	Pack   ID
	Type   BlobType
	Offset uint32
	Length uint32
	RawLen uint32
}

// MasterIndex maps blob IDs to pack locations for the whole repository. It is
// safe for concurrent use.
type MasterIndex struct {
	mu       sync.RWMutex
	packs    []ID
	packSize []int64 // by pack number: the stored size its listing implies
	packNum  map[ID]uint32
	sorted   []indexRecord // sorted by (id, typ)
	pending  map[BlobHandle]BlobLocation
	excluded map[ID]bool // condemned packs: never used for dedup
}

// NewMasterIndex returns an empty index.
func NewMasterIndex() *MasterIndex {
	return &MasterIndex{packNum: map[ID]uint32{}, pending: map[BlobHandle]BlobLocation{}, excluded: map[ID]bool{}}
}

func (m *MasterIndex) packNumber(p *IndexPack) uint32 {
	n, ok := m.packNum[p.ID]
	if !ok {
		n = uint32(len(m.packs)) // #nosec G115 -- 2^32 distinct packs would need over 128 GiB of IDs in memory
		m.packs = append(m.packs, p.ID)
		m.packSize = append(m.packSize, listedPackSize(p.Blobs))
		m.packNum[p.ID] = n
	}
	return n
}

// listedPackSize is the stored size of a pack holding entries
// (ExpectedPackSize) for a listing whose blobs are back to back, as every
// writer's are, without sorting them.
func listedPackSize(entries []PackEntry) int64 {
	end := int64(crypto.HeaderSize)
	for _, e := range entries {
		end += int64(e.Length)
	}
	return padding.Padme(end + 5 + int64(len(entries))*packEntrySize + crypto.Overhead + 4)
}

// AddFiles merges decoded index files and re-sorts once.
func (m *MasterIndex) AddFiles(files []*IndexFile) {
	m.mu.Lock()
	defer m.mu.Unlock()
	total := len(m.sorted)
	for _, f := range files {
		for _, p := range f.Packs {
			total += len(p.Blobs)
		}
	}
	// Size the array exactly: append's growth would add up to a quarter.
	grown := make([]indexRecord, len(m.sorted), total)
	copy(grown, m.sorted)
	m.sorted = grown
	for _, f := range files {
		for i := range f.Packs {
			p := &f.Packs[i]
			n := m.packNumber(p)
			for _, e := range p.Blobs {
				m.sorted = append(m.sorted, indexRecord{id: e.ID, pack: n, offset: e.Offset, length: e.Length, rawLen: e.RawLen, typ: e.Type})
			}
		}
	}
	m.sortLocked()
}

func (m *MasterIndex) sortLocked() {
	slices.SortFunc(m.sorted, func(a, b indexRecord) int {
		if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
			return c
		}
		return int(a.typ) - int(b.typ)
	})
}

// AddPending records blobs of a pack written in this session.
func (m *MasterIndex) AddPending(pack ID, entries []PackEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range entries {
		m.pending[BlobHandle{e.Type, e.ID}] = BlobLocation{Pack: pack, Type: e.Type, Offset: e.Offset, Length: e.Length, RawLen: e.RawLen}
	}
}

// Exclude marks packs whose blobs must not be used for deduplication.
func (m *MasterIndex) Exclude(packs []ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range packs {
		m.excluded[p] = true
	}
}

func (m *MasterIndex) search(h BlobHandle) int {
	return sort.Search(len(m.sorted), func(i int) bool {
		r := &m.sorted[i]
		if c := bytes.Compare(r.id[:], h.ID[:]); c != 0 {
			return c > 0
		}
		return r.typ >= h.Type
	})
}

// Lookup returns every stored location of a blob (pending ones included),
// those in excluded packs last: a reader tries them in order.
func (m *MasterIndex) Lookup(h BlobHandle) []BlobLocation {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out, last []BlobLocation
	if l, ok := m.pending[h]; ok {
		out = append(out, l)
	}
	for i := m.search(h); i < len(m.sorted) && m.sorted[i].id == h.ID && m.sorted[i].typ == h.Type; i++ {
		r := m.sorted[i]
		l := BlobLocation{Pack: m.packs[r.pack], Type: r.typ, Offset: r.offset, Length: r.length, RawLen: r.rawLen}
		if m.excluded[l.Pack] {
			last = append(last, l)
		} else {
			out = append(out, l)
		}
	}
	return append(out, last...)
}

// Has reports whether a blob is stored in a pack usable for deduplication.
func (m *MasterIndex) Has(h BlobHandle) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.pending[h]; ok {
		return true
	}
	for i := m.search(h); i < len(m.sorted) && m.sorted[i].id == h.ID && m.sorted[i].typ == h.Type; i++ {
		if !m.excluded[m.packs[m.sorted[i].pack]] {
			return true
		}
	}
	return false
}

// Each calls fn for every indexed blob (not pending ones), in ID order.
func (m *MasterIndex) Each(fn func(BlobLocation, ID) bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, r := range m.sorted {
		if !fn(BlobLocation{Pack: m.packs[r.pack], Type: r.typ, Offset: r.offset, Length: r.length, RawLen: r.rawLen}, r.id) {
			return
		}
	}
}

// PackSizes calls fn for every indexed pack with the stored size its
// listing implies.
func (m *MasterIndex) PackSizes(fn func(pack ID, size int64)) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for i, id := range m.packs {
		fn(id, m.packSize[i])
	}
}

// Packs returns the IDs of all indexed packs.
func (m *MasterIndex) Packs() []ID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.packs)
}

// Count returns the number of indexed blob records.
func (m *MasterIndex) Count() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.sorted) + len(m.pending)
}
