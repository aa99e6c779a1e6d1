package formattest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/compress"
	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
)

// Known-answer vectors for the key hierarchy (docs/format.md §2), pack
// files (§5) and index files (§6): testdata/format-vectors.json holds
// inputs and the bytes spec_test.go derives from them. The tests check
// that the JSON is what the spec derives and that coffer reads it; the
// envelope's own vectors, which coffer also writes byte for byte, live in
// internal/crypto. Regenerate only for a new format version:
//
//	COFFER_REGEN_VECTORS=1 go test ./internal/formattest/ -run TestFormatVectors
const formatVectorsFile = "testdata/format-vectors.json"

type keysVector struct {
	MasterSecret hexBytes `json:"master_secret"`
	RepoID       hexBytes `json:"repo_id"`
	KEK          hexBytes `json:"kek"`
	BlobIDKey    hexBytes `json:"blob_id_key"`
	ChunkerKey   hexBytes `json:"chunker_key"`
}

type packVector struct {
	Cipher    byte        `json:"cipher"`
	Term      uint32      `json:"term"`
	TermKey   hexBytes    `json:"term_key"`
	PackID    hexBytes    `json:"pack_id"`
	Salt      hexBytes    `json:"salt"`
	Blobs     []specBlob  `json:"blobs"` // in layout order; IDs keyed by keys.blob_id_key
	DirNonce  hexBytes    `json:"dir_nonce"`
	Directory hexBytes    `json:"directory"` // plaintext, padded
	Entries   []specEntry `json:"entries"`
	Pack      hexBytes    `json:"pack"`
}

type indexVector struct {
	Cipher     byte            `json:"cipher"`
	Term       uint32          `json:"term"`
	TermKey    hexBytes        `json:"term_key"`
	IndexID    hexBytes        `json:"index_id"`
	Salt       hexBytes        `json:"salt"`
	Nonce      hexBytes        `json:"nonce"`
	Supersedes []hexBytes      `json:"supersedes"`
	Packs      []specIndexPack `json:"packs"`
	Plaintext  hexBytes        `json:"plaintext"`
	Object     hexBytes        `json:"object"`
}

type formatVectors struct {
	Comment string      `json:"comment"`
	Keys    keysVector  `json:"keys"`
	Pack    packVector  `json:"pack"`
	Index   indexVector `json:"index"`
}

// zstdPayload compresses for a vector's input (encoding byte 1); crc says
// whether the frame carries zstd's content checksum.
func zstdPayload(t *testing.T, plain []byte, crc bool) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(crc), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(plain, []byte{1})
}

// newFormatVectors derives every vector from fixed inputs. Compressed
// payloads are inputs too (a zstd library may compress differently one
// day; what must never change is that coffer reads these).
func newFormatVectors(t *testing.T) formatVectors {
	var v formatVectors
	v.Comment = "coffer format known-answer vectors (docs/format.md §2 keys, §5 pack, §6 index); byte strings hex; see vectors_test.go"
	k := &v.Keys
	k.MasterSecret, k.RepoID = fill(0x00, 64), fill(0x40, 32)
	k.KEK = specHKDF(k.MasterSecret, k.RepoID, "coffer/v1/kek")
	k.BlobIDKey = specHKDF(k.MasterSecret, k.RepoID, "coffer/v1/blob-id")
	k.ChunkerKey = specHKDF(k.MasterSecret, k.RepoID, "coffer/v1/chunker")

	p := &v.Pack
	p.Cipher, p.Term, p.TermKey, p.PackID, p.Salt, p.DirNonce = 1, 1, fill(0x60, 32), fill(0x80, 32), fill(0xa0, 32), fill(0xc0, 12)
	tree := []byte(`{"nodes":[` + strings.Repeat(`{"name":"ZmlsZQ==","type":"file","mode":420,"uid":0,"gid":0,"mtime_ns":0,"atime_ns":0,"ctime_ns":0},`, 3) + `{"name":"eg==","type":"file","mode":420,"uid":0,"gid":0,"mtime_ns":0,"atime_ns":0,"ctime_ns":0}]}`)
	data := bytes.Repeat([]byte("coffer "), 64)
	p.Blobs = []specBlob{
		{Type: 2, Plaintext: tree, Payload: zstdPayload(t, tree, false), Nonce: fill(0xd0, 12)},
		{Type: 1, Plaintext: fill(0x10, 100), Payload: append([]byte{0}, fill(0x10, 100)...), Nonce: fill(0xe0, 12)},
		{Type: 1, Plaintext: data, Payload: zstdPayload(t, data, true), Nonce: fill(0xf0, 12)},
	}
	for i := range p.Blobs {
		h, err := blake3.NewKeyed(k.BlobIDKey)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = h.Write(p.Blobs[i].Plaintext)
		p.Blobs[i].ID = h.Sum(nil)
	}
	p.Pack, p.Directory, p.Entries = specPack(packSealer(t, v), p.Blobs, p.DirNonce)

	x := &v.Index
	x.Cipher, x.Term, x.TermKey, x.IndexID, x.Salt, x.Nonce = 2, 4, fill(0x70, 32), fill(0x90, 32), fill(0xb0, 32), fill(0x30, 12)
	x.Supersedes = []hexBytes{fill(0x01, 32), fill(0x02, 32)}
	x.Packs = []specIndexPack{{ID: p.PackID, Blobs: p.Entries},
		{ID: fill(0x03, 32), Blobs: []specEntry{{Type: 2, ID: fill(0x04, 32), Offset: 44, Length: 1000, RawLen: 5000}}}}
	x.Plaintext = specIndex(x.Supersedes, x.Packs)
	hdr := specHeader(4, x.Cipher, x.Term, x.Salt)
	s, err := newSpecSealer(hdr, x.TermKey, k.RepoID, "index/"+hexString(x.IndexID))
	if err != nil {
		t.Fatal(err)
	}
	x.Object = append(hdr, s.seal(x.Nonce, x.Plaintext, nil)...)
	return v
}

func hexString(b []byte) string { t, _ := hexBytes(b).MarshalText(); return string(t) }

func loadFormatVectors(t *testing.T) formatVectors {
	t.Helper()
	if os.Getenv("COFFER_REGEN_VECTORS") == "1" {
		b, err := json.MarshalIndent(newFormatVectors(t), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(formatVectorsFile, append(b, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(formatVectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var v formatVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestFormatVectors checks the JSON against the spec: recomputes every
// derived byte from the inputs and the payloads the file holds.
func TestFormatVectors(t *testing.T) {
	v := loadFormatVectors(t)
	want := newFormatVectors(t)
	// Compressed payloads are inputs: take the file's, check they decode.
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for i := range want.Pack.Blobs {
		b := v.Pack.Blobs[i]
		if b.Payload[0] == 1 {
			got, err := dec.DecodeAll(b.Payload[1:], nil)
			if err != nil || !bytes.Equal(got, b.Plaintext) {
				t.Fatalf("blob %d: zstd payload does not decode to its plaintext: %v", i, err)
			}
			want.Pack.Blobs[i].Payload = b.Payload
		}
	}
	want.Pack.Pack, want.Pack.Directory, want.Pack.Entries = specPack(packSealer(t, want), want.Pack.Blobs, want.Pack.DirNonce)
	want.Index.Packs[0].Blobs = want.Pack.Entries
	want.Index.Plaintext = specIndex(want.Index.Supersedes, want.Index.Packs)
	hdr := specHeader(4, want.Index.Cipher, want.Index.Term, want.Index.Salt)
	s, err := newSpecSealer(hdr, want.Index.TermKey, want.Keys.RepoID, "index/"+hexString(want.Index.IndexID))
	if err != nil {
		t.Fatal(err)
	}
	want.Index.Object = append(hdr, s.seal(want.Index.Nonce, want.Index.Plaintext, nil)...)
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(v)
	if !bytes.Equal(wj, gj) {
		t.Fatalf("%s differs from what the spec derives from its inputs", formatVectorsFile)
	}
	// Self-check of the spec reader on the vector.
	if parsed, err := specParsePack(packSealer(t, want), want.Pack.Pack); err != nil || len(parsed.entries) != 3 {
		t.Fatalf("spec reader on the pack vector: %v", err)
	}
}

// packSealer is the spec's sealer of the pack vector.
func packSealer(t *testing.T, v formatVectors) *specSealer {
	t.Helper()
	s, err := newSpecSealer(specHeader(3, v.Pack.Cipher, v.Pack.Term, v.Pack.Salt), v.Pack.TermKey, v.Keys.RepoID, "data/"+hexString(v.Pack.PackID))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKeyVectorsOpenWithCoffer(t *testing.T) {
	t.Parallel()
	k := loadFormatVectors(t).Keys
	m, err := keyring.NewMaster(keyring.MasterSecret(k.MasterSecret), k.RepoID)
	if err != nil {
		t.Fatal(err)
	}
	kek, bid, chk := m.KEK(), m.BlobIDKey(), m.ChunkerKey()
	if !bytes.Equal(kek[:], k.KEK) || !bytes.Equal(bid[:], k.BlobIDKey) || !bytes.Equal(chk[:], k.ChunkerKey) {
		t.Fatalf("coffer derives KEK %x, blob-ID key %x, chunker key %x; vectors say %x, %x, %x", kek, bid, chk, k.KEK, k.BlobIDKey, k.ChunkerKey)
	}
}

func termKeys(term uint32, key []byte) crypto.KeyLookup {
	return func(t uint32) (crypto.Key, error) {
		if t != term {
			return crypto.Key{}, errors.New("unexpected term")
		}
		return crypto.Key(key), nil
	}
}

func TestPackVectorOpensWithCoffer(t *testing.T) {
	t.Parallel()
	v := loadFormatVectors(t)
	p := v.Pack
	id := repository.ID(p.PackID)
	r, err := repository.NewPackReader(id, p.Pack[:crypto.HeaderSize], termKeys(p.Term, p.TermKey), v.Keys.RepoID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Term() != p.Term {
		t.Fatalf("term %d, want %d", r.Term(), p.Term)
	}
	entries, err := r.ParseDirectory(p.Pack, int64(len(p.Pack)))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(p.Entries) {
		t.Fatalf("%d entries, want %d", len(entries), len(p.Entries))
	}
	hasher := repository.NewBlobHasher(crypto.Key(v.Keys.BlobIDKey))
	for i, e := range entries {
		w := p.Entries[i]
		if byte(e.Type) != w.Type || !bytes.Equal(e.ID[:], w.ID) || e.Offset != w.Offset || e.Length != w.Length || e.RawLen != w.RawLen {
			t.Fatalf("entry %d: %+v, want %+v", i, e, w)
		}
		plain, err := r.OpenBlob(e, p.Pack[e.Offset:e.Offset+e.Length])
		if err != nil || !bytes.Equal(plain, p.Blobs[i].Plaintext) {
			t.Fatalf("blob %d: %v", i, err)
		}
		if got := hasher.Sum(plain); got != e.ID {
			t.Fatalf("blob %d: coffer's ID %s, vector %x", i, got, w.ID)
		}
	}
	// The same bytes under another pack's name must not open.
	other, err := repository.NewPackReader(repository.ID(v.Index.IndexID), p.Pack[:crypto.HeaderSize], termKeys(p.Term, p.TermKey), v.Keys.RepoID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.ParseDirectory(p.Pack, int64(len(p.Pack))); err == nil {
		t.Fatal("a pack opened under another name")
	}
}

func TestIndexVectorOpensWithCoffer(t *testing.T) {
	t.Parallel()
	v := loadFormatVectors(t)
	x := v.Index
	plain, err := crypto.OpenObject(crypto.KindIndex, termKeys(x.Term, x.TermKey), v.Keys.RepoID, "index/"+hexString(x.IndexID), x.Object)
	if err != nil || !bytes.Equal(plain, x.Plaintext) {
		t.Fatalf("open the index object: %v", err)
	}
	f, err := repository.DecodeIndexFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Encode(); !bytes.Equal(got, x.Plaintext) {
		t.Fatalf("coffer re-encodes the index as %x, want %x", got, x.Plaintext)
	}
	if len(f.Supersedes) != len(x.Supersedes) || len(f.Packs) != len(x.Packs) {
		t.Fatalf("decoded %d superseded files and %d packs", len(f.Supersedes), len(f.Packs))
	}
	for i, id := range f.Supersedes {
		if !bytes.Equal(id[:], x.Supersedes[i]) {
			t.Fatalf("supersedes[%d] = %s", i, id)
		}
	}
	for i, p := range f.Packs {
		if !bytes.Equal(p.ID[:], x.Packs[i].ID) || len(p.Blobs) != len(x.Packs[i].Blobs) {
			t.Fatalf("pack %d: %s with %d blobs", i, p.ID, len(p.Blobs))
		}
		for j, e := range p.Blobs {
			w := x.Packs[i].Blobs[j]
			if byte(e.Type) != w.Type || !bytes.Equal(e.ID[:], w.ID) || e.Offset != w.Offset || e.Length != w.Length || e.RawLen != w.RawLen {
				t.Fatalf("pack %d entry %d: %+v, want %+v", i, j, e, w)
			}
		}
	}
}

// TestCofferWritesSpecPacks has coffer write a pack and an index through
// its ordinary path, reads them back with the spec reader alone, and
// rebuilds them from the random choices they carry (salt, nonces, blob
// order): the rebuilt bytes must equal the stored ones.
func TestCofferWritesSpecPacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := mem.New()
	r, _, err := repository.Init(ctx, st, repository.InitOptions{Passphrase: []byte("pw"), Cipher: crypto.ChaCha20Poly1305,
		Compression: compress.Auto, KDF: fixtureKDF})
	if err != nil {
		t.Fatal(err)
	}
	plains := map[string][]byte{}
	r.StartWriting(ctx)
	for _, b := range [][]byte{words("pack a", 5000), stream("pack b", 3000), []byte("tiny")} {
		id, _, err := r.SaveBlob(ctx, repository.DataBlob, b)
		if err != nil {
			t.Fatal(err)
		}
		plains[id.String()] = b
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	term, key := uint32(1), mustKey(t, r, 1)
	packs := list(t, st, storage.KindData)
	if len(packs) != 1 {
		t.Fatalf("%d packs, want 1", len(packs))
	}
	pack, err := st.Load(ctx, storage.Handle{Kind: storage.KindData, Name: packs[0]}, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSpecSealer(pack, key[:], r.ID(), "data/"+packs[0])
	if err != nil {
		t.Fatal(err)
	}
	if pack[4] != 3 || pack[6] != 2 || pack[8] != 0 || pack[11] != byte(term) {
		t.Fatalf("pack header %x: want kind 3, ChaCha20-Poly1305, term 1", pack[:12])
	}
	parsed, err := specParsePack(s, pack)
	if err != nil {
		t.Fatalf("spec reader on coffer's pack: %v", err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for i, b := range parsed.blobs {
		want, ok := plains[hexString(b.ID)]
		if !ok {
			t.Fatalf("pack holds unknown blob %x", b.ID)
		}
		got := b.Payload[1:]
		if b.Payload[0] == 1 {
			if got, err = dec.DecodeAll(got, nil); err != nil {
				t.Fatal(err)
			}
		} else if b.Payload[0] != 0 {
			t.Fatalf("blob %d: encoding %d", i, b.Payload[0])
		}
		if !bytes.Equal(got, want) || int(parsed.entries[i].RawLen) != len(want) {
			t.Fatalf("blob %d does not hold its plaintext", i)
		}
		parsed.blobs[i].Plaintext = want
	}
	rebuilt, _, _ := specPack(s, parsed.blobs, parsed.dirNonce)
	if !bytes.Equal(rebuilt, pack) {
		t.Fatal("coffer's pack differs from the spec's rebuild of its own parts")
	}

	idx := list(t, st, storage.KindIndex)
	if len(idx) != 1 {
		t.Fatalf("%d index files, want 1", len(idx))
	}
	obj, err := st.Load(ctx, storage.Handle{Kind: storage.KindIndex, Name: idx[0]}, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	is, err := newSpecSealer(obj, key[:], r.ID(), "index/"+idx[0])
	if err != nil || obj[4] != 4 {
		t.Fatalf("index header %x: %v", obj[:12], err)
	}
	plain, err := is.open(obj[44:], nil)
	if err != nil {
		t.Fatalf("spec reader on coffer's index: %v", err)
	}
	sup, ipacks, err := specParseIndex(plain)
	if err != nil || len(sup) != 0 || len(ipacks) != 1 || hexString(ipacks[0].ID) != packs[0] {
		t.Fatalf("index lists %d superseded files and packs %v (%v)", len(sup), ipacks, err)
	}
	byID := func(a, b specEntry) int { return bytes.Compare(a.ID, b.ID) }
	got, want := slices.Clone(ipacks[0].Blobs), slices.Clone(parsed.entries)
	slices.SortFunc(got, byID)
	slices.SortFunc(want, byID)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if !bytes.Equal(gj, wj) {
		t.Fatalf("index entries %s, pack directory %s", gj, wj)
	}
	if rebuiltIdx := append(bytes.Clone(obj[:44]), is.seal(obj[44:56], specIndex(nil, ipacks), nil)...); !bytes.Equal(rebuiltIdx, obj) {
		t.Fatal("coffer's index object differs from the spec's rebuild")
	}
}

func mustKey(t *testing.T, r *repository.Repository, term uint32) crypto.Key {
	t.Helper()
	k, err := r.KeyLookup(term)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func list(t *testing.T, st storage.Storage, kind storage.Kind) []string {
	t.Helper()
	var names []string
	if err := st.List(context.Background(), kind, func(fi storage.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return names
}
