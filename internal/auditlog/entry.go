// Package auditlog is the server's append-only audit log: hash-chained
// JSON-lines segments with signed checkpoints, verified against a chain head
// kept elsewhere (docs/fleet.md, "Audit log").
package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Outcomes of an audited action. Outcome is free text; these are the words
// coffer writes.
const (
	OutcomeOK      = "ok"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)

// Actions the log writes itself; Append refuses them from callers.
const (
	ActionCheckpoint = "checkpoint"   // a signed checkpoint over the chain so far
	ActionRepaired   = "log-repaired" // Open removed a partial last line
)

// RoleServer is the actor role of the entries the log writes itself.
const RoleServer = "server"

// MaxLineBytes bounds one encoded entry, newline included.
const MaxLineBytes = 64 << 10

// ErrInvalidEntry is returned for an entry that cannot be stored or a line
// that is not exactly the canonical encoding of a valid entry.
var ErrInvalidEntry = errors.New("invalid audit entry")

// Hash is a SHA-256 chain hash. Its JSON form is 64 lowercase hex digits.
type Hash [sha256.Size]byte

// String returns the hash in lowercase hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: exactly 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	p, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseHash parses 64 hex digits (the form String writes).
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("%w: hash %q is not %d hex digits", ErrInvalidEntry, s, 2*len(h))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: hash %q: %w", ErrInvalidEntry, s, err)
	}
	return h, nil
}

// Head is the end of the chain: the last entry's sequence number and hash.
// The zero Head is an empty log. The caller keeps the latest Head apart from
// the log (the server: in its state database), so that Verify can tell
// entries cut off the end.
type Head struct {
	Seq  uint64
	Hash Hash
}

// Actor is who acted: a client or user name and its role.
type Actor struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Entry is one line of the log. Append fills Seq, Time, Prev and Hash.
type Entry struct {
	Seq     uint64            `json:"seq"`     // 1 for the first entry, dense
	Time    time.Time         `json:"time"`    // UTC, set by the log
	Actor   Actor             `json:"actor"`   // who
	Action  string            `json:"action"`  // what, e.g. "enrol", "policy", "restore"
	Target  string            `json:"target"`  // on what, e.g. "client:web1"; may be empty
	Outcome string            `json:"outcome"` // OutcomeOK, OutcomeRefused, ...
	Details map[string]string `json:"details"` // free key/value pairs; never nil once stored
	Prev    Hash              `json:"prev"`    // the previous entry's Hash; zero for seq 1
	Hash    Hash              `json:"hash"`    // SHA-256 of the canonical encoding (ComputeHash)
}

// Head returns the chain head this entry ends.
func (e Entry) Head() Head { return Head{Seq: e.Seq, Hash: e.Hash} }

const (
	hashDomain       = "coffer-audit-v1\n"
	checkpointDomain = "coffer-audit-checkpoint-v1\n"
)

// ComputeHash returns the chain hash of e: SHA-256 over
//
//	"coffer-audit-v1\n"
//	u64 seq
//	str time (RFC 3339 in UTC with nanoseconds, trailing zeros trimmed: the line's form)
//	str actor.name, str actor.role, str action, str target, str outcome
//	u32 number of details, then str key, str value for each, keys in byte order
//	prev (32 bytes)
//
// where u64 and u32 are big-endian and str is a u32 length then the bytes.
// e.Hash itself is not an input.
func ComputeHash(e Entry) Hash {
	var b []byte
	b = append(b, hashDomain...)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = appendStr(b, e.Time.UTC().Format(time.RFC3339Nano))
	for _, s := range []string{e.Actor.Name, e.Actor.Role, e.Action, e.Target, e.Outcome} {
		b = appendStr(b, s)
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys))) // #nosec G115 -- bounded by MaxLineBytes
	for _, k := range keys {
		b = appendStr(appendStr(b, k), e.Details[k])
	}
	b = append(b, e.Prev[:]...)
	return sha256.Sum256(b)
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s))) // #nosec G115 -- bounded by MaxLineBytes
	return append(b, s...)
}

// checkStrings refuses text that JSON would not carry byte for byte.
func checkStrings(e Entry) error {
	ss := []string{e.Actor.Name, e.Actor.Role, e.Action, e.Target, e.Outcome}
	for k, v := range e.Details {
		ss = append(ss, k, v)
	}
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidEntry, s)
		}
	}
	if e.Action == "" || e.Outcome == "" {
		return fmt.Errorf("%w: action and outcome are required", ErrInvalidEntry)
	}
	return nil
}

// EncodeLine returns e's canonical line, newline included: the JSON object
// with the fields in Entry's order, no insignificant space, details keys
// sorted, <, > and & unescaped.
func EncodeLine(e Entry) ([]byte, error) {
	if e.Details == nil {
		e.Details = map[string]string{}
	}
	e.Time = e.Time.UTC()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEntry, err)
	}
	if buf.Len() > MaxLineBytes {
		return nil, fmt.Errorf("%w: %d bytes encoded, at most %d", ErrInvalidEntry, buf.Len(), MaxLineBytes)
	}
	return buf.Bytes(), nil
}

// DecodeLine parses one line (with or without its newline). It accepts only
// the exact canonical encoding of a valid entry, so that every byte of the
// line is covered by the hash; it does not check the hash (Verify does).
func DecodeLine(line []byte) (Entry, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	if len(line) >= MaxLineBytes {
		return Entry{}, fmt.Errorf("%w: line of %d bytes, at most %d", ErrInvalidEntry, len(line), MaxLineBytes-1)
	}
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("%w: %w", ErrInvalidEntry, err)
	}
	if e.Time.Location() != time.UTC {
		return Entry{}, fmt.Errorf("%w: time %s is not in UTC", ErrInvalidEntry, e.Time.Format(time.RFC3339Nano))
	}
	if err := checkStrings(e); err != nil {
		return Entry{}, err
	}
	again, err := EncodeLine(e)
	if err != nil {
		return Entry{}, err
	}
	if !bytes.Equal(again[:len(again)-1], line) {
		return Entry{}, fmt.Errorf("%w: line is not in canonical form", ErrInvalidEntry)
	}
	return e, nil
}

// KeyID names an Ed25519 public key in checkpoints: the first 8 bytes of its
// SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// checkpointMessage is what a checkpoint at seq signs: the chain up to the
// entry before it, "coffer-audit-checkpoint-v1\n" || u64 seq-1 || prev.
func checkpointMessage(seq uint64, prev Hash) []byte {
	b := append([]byte(checkpointDomain), binary.BigEndian.AppendUint64(nil, seq-1)...)
	return append(b, prev[:]...)
}

// newCheckpoint returns the checkpoint entry to follow head (Append stamps
// its time and hash).
func newCheckpoint(head Head, key ed25519.PrivateKey) Entry {
	pub, _ := key.Public().(ed25519.PublicKey)
	sig := ed25519.Sign(key, checkpointMessage(head.Seq+1, head.Hash))
	return Entry{
		Actor:   Actor{Name: "coffer", Role: RoleServer},
		Action:  ActionCheckpoint,
		Outcome: OutcomeOK,
		Details: map[string]string{
			"key":       KeyID(pub),
			"signature": base64.StdEncoding.EncodeToString(sig),
			"signs":     strconv.FormatUint(head.Seq, 10),
		},
	}
}

// checkCheckpoint verifies a checkpoint entry's signature with pub.
func checkCheckpoint(e Entry, pub ed25519.PublicKey) error {
	if want := strconv.FormatUint(e.Seq-1, 10); e.Details["signs"] != want {
		return fmt.Errorf("checkpoint says it signs seq %q, want %s", e.Details["signs"], want)
	}
	if id := KeyID(pub); e.Details["key"] != id {
		return fmt.Errorf("checkpoint signed by key %q, want %s", e.Details["key"], id)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(e.Details["signature"])
	if err != nil || !ed25519.Verify(pub, checkpointMessage(e.Seq, e.Prev), sig) {
		return errors.New("checkpoint signature does not verify")
	}
	return nil
}
