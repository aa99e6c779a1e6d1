// Package fsmeta reads a filesystem entry's complete metadata for backup and
// recreates entries and applies that metadata on restore, byte for byte.
package fsmeta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Type is the kind of a filesystem entry. Its values are stored in snapshots.
type Type string

// The entry types. Anything else is refused by Validate.
const (
	TypeFile     Type = "file"
	TypeDir      Type = "dir"
	TypeSymlink  Type = "symlink"
	TypeFIFO     Type = "fifo"
	TypeCharDev  Type = "chardev"
	TypeBlockDev Type = "blockdev"
	TypeSocket   Type = "socket"
)

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrIncomplete marks an error from Lstat or Apply after which the entry
	// was fully processed except for the parts the joined errors name (some
	// xattrs, the owner, the inode flags). Lstat's Meta is usable; the
	// restored entry exists with its data. Treat it as a warning.
	ErrIncomplete = errors.New("metadata not completely preserved")
	// ErrInvalidMeta is returned for a Meta that fails Validate.
	ErrInvalidMeta = errors.New("invalid metadata")
	// ErrUnsupportedType is returned for an inode type fsmeta does not know.
	ErrUnsupportedType = errors.New("unsupported file type")
	// ErrTypeMismatch is returned by Apply when the entry on disk is not of
	// the type the Meta describes (it was replaced behind the restorer's back).
	ErrTypeMismatch = errors.New("entry on disk has a different type")
)

// Meta is the full metadata of one filesystem entry. It is stored inside
// snapshot tree nodes as JSON; its field names and tags are part of the
// repository format. Byte fields that may hold any bytes are []byte (base64
// in JSON); Xattr names, which may too, have their own JSON encoding.
type Meta struct {
	Type Type `json:"type"`
	// Mode holds the permission bits with setuid, setgid and sticky
	// (st_mode & 07777). The type bits are in Type.
	Mode uint32 `json:"mode"`
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	// User and Group are the names of UID and GID on the backed-up host,
	// empty when unknown or not valid UTF-8. Numeric IDs are authoritative.
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	// Size is st_size for regular files and symlinks, 0 for other types.
	Size int64 `json:"size,omitempty"`
	// Times in nanoseconds since the Unix epoch (saturated to the int64
	// range, years 1678 to 2262). CTimeNs is recorded for change detection
	// only; no filesystem lets it be set.
	MTimeNs int64 `json:"mtime_ns"`
	ATimeNs int64 `json:"atime_ns"`
	CTimeNs int64 `json:"ctime_ns"`
	// Inode, Device and Links identify hard links and changed files. They
	// are not restored.
	Inode  uint64 `json:"inode,omitempty"`
	Device uint64 `json:"device,omitempty"`
	Links  uint64 `json:"links,omitempty"`
	// Rdev is the device number of a chardev or blockdev, in Linux dev_t
	// encoding (unix.Mkdev(major, minor)).
	Rdev uint64 `json:"rdev,omitempty"`
	// Flags are the Linux inode flags (chattr: immutable, append-only,
	// nodump, noatime, nocow, ...) of regular files and directories,
	// restricted to RestorableFlags.
	Flags uint32 `json:"flags,omitempty"`
	// LinkTarget is a symlink's target, raw bytes.
	LinkTarget []byte `json:"link_target,omitempty"`
	// Xattrs are all extended attributes, sorted by name: user.*, trusted.*,
	// security.* (selinux, capability) and system.* (POSIX ACLs as their raw
	// xattr values system.posix_acl_access / system.posix_acl_default).
	Xattrs []Xattr `json:"xattrs,omitempty"`
}

// Xattr is one extended attribute. Name holds raw bytes; it is written to JSON
// as "name" when it is valid UTF-8 and as base64 "name_raw" otherwise.
type Xattr struct {
	Name  string
	Value []byte
}

type xattrJSON struct {
	Name    string `json:"name,omitempty"`
	NameRaw []byte `json:"name_raw,omitempty"`
	Value   []byte `json:"value,omitempty"`
}

// MarshalJSON encodes x keeping a non-UTF-8 name exact.
func (x Xattr) MarshalJSON() ([]byte, error) {
	j := xattrJSON{Value: x.Value}
	if utf8.ValidString(x.Name) {
		j.Name = x.Name
	} else {
		j.NameRaw = []byte(x.Name)
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON writes, refusing unknown fields
// as the decoder of the enclosing tree does (its option does not reach a
// custom unmarshaler).
func (x *Xattr) UnmarshalJSON(b []byte) error {
	var j xattrJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	if len(j.NameRaw) > 0 {
		if j.Name != "" {
			return fmt.Errorf("xattr has both name and name_raw: %w", ErrInvalidMeta)
		}
		j.Name = string(j.NameRaw)
	}
	x.Name, x.Value = j.Name, j.Value
	return nil
}

// Linux inode flags (linux/fs.h). x/sys/unix does not export them.
const (
	FlagSecRm       uint32 = 0x00000001
	FlagUnRm        uint32 = 0x00000002
	FlagCompr       uint32 = 0x00000004
	FlagSync        uint32 = 0x00000008
	FlagImmutable   uint32 = 0x00000010
	FlagAppend      uint32 = 0x00000020
	FlagNoDump      uint32 = 0x00000040
	FlagNoAtime     uint32 = 0x00000080
	FlagNoComp      uint32 = 0x00000400
	FlagJournalData uint32 = 0x00004000
	FlagNoTail      uint32 = 0x00008000
	FlagDirSync     uint32 = 0x00010000
	FlagTopDir      uint32 = 0x00020000
	FlagNoCOW       uint32 = 0x00800000
	FlagProjInherit uint32 = 0x20000000
)

// RestorableFlags are the inode flags Lstat records and Apply sets. Others
// (extents, inline data, encryption, verity, casefold) describe how a
// filesystem stores the file and cannot be set from user space.
const RestorableFlags = FlagSecRm | FlagUnRm | FlagCompr | FlagSync | FlagImmutable |
	FlagAppend | FlagNoDump | FlagNoAtime | FlagNoComp | FlagJournalData | FlagNoTail |
	FlagDirSync | FlagTopDir | FlagNoCOW | FlagProjInherit

// ApplyOptions control Apply.
type ApplyOptions struct {
	// ByName maps Meta.User and Meta.Group to the local IDs of the same names
	// when they exist here (like tar); otherwise, and by default (like
	// restic and tar --numeric-owner), the numeric UID and GID are restored.
	ByName bool
	// Strict turns every tolerated failure (owner not settable without
	// privilege, xattrs or flags the target filesystem refuses) into a
	// returned error without ErrIncomplete, and Apply stops there.
	Strict bool
}

// Validate checks what a restore relies on: a known type, mode bits within
// 07777, a plausible symlink target, and xattr names that are non-empty,
// free of NUL and strictly sorted. Meta decoded from a snapshot must pass it
// before it is applied; Apply and Create call it themselves.
func (m *Meta) Validate() error {
	if m == nil {
		return fmt.Errorf("nil metadata: %w", ErrInvalidMeta)
	}
	switch m.Type {
	case TypeFile, TypeDir, TypeSymlink, TypeFIFO, TypeCharDev, TypeBlockDev, TypeSocket:
	default:
		return fmt.Errorf("type %q: %w", m.Type, ErrInvalidMeta)
	}
	if m.Mode&^0o7777 != 0 {
		return fmt.Errorf("mode %#o has bits outside 07777: %w", m.Mode, ErrInvalidMeta)
	}
	if m.Size < 0 {
		return fmt.Errorf("negative size %d: %w", m.Size, ErrInvalidMeta)
	}
	if m.Type == TypeSymlink {
		if len(m.LinkTarget) == 0 || bytes.IndexByte(m.LinkTarget, 0) >= 0 {
			return fmt.Errorf("symlink target empty or contains NUL: %w", ErrInvalidMeta)
		}
	} else if len(m.LinkTarget) != 0 {
		return fmt.Errorf("link target on a %s: %w", m.Type, ErrInvalidMeta)
	}
	for i, x := range m.Xattrs {
		if x.Name == "" || strings.IndexByte(x.Name, 0) >= 0 {
			return fmt.Errorf("xattr name %q empty or contains NUL: %w", x.Name, ErrInvalidMeta)
		}
		if i > 0 && m.Xattrs[i-1].Name >= x.Name {
			return fmt.Errorf("xattrs not strictly sorted at %q: %w", x.Name, ErrInvalidMeta)
		}
	}
	return nil
}

// SameContent reports whether o very likely has the same content as m: same
// type, size, mtime, ctime and inode. It is the archiver's fast path for
// reusing a parent snapshot's chunk list without reading the file.
func (m *Meta) SameContent(o *Meta) bool {
	if m == nil || o == nil {
		return false
	}
	return m.Type == o.Type && m.Size == o.Size && m.MTimeNs == o.MTimeNs &&
		m.CTimeNs == o.CTimeNs && m.Inode == o.Inode
}

// Xattr returns the value of the named xattr and whether m has it.
func (m *Meta) Xattr(name string) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(m.Xattrs, name, func(x Xattr, n string) int {
		return strings.Compare(x.Name, n)
	})
	if !ok {
		return nil, false
	}
	return m.Xattrs[i].Value, true
}

func sortXattrs(xs []Xattr) {
	slices.SortFunc(xs, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
}

// incompleteError joins tolerated failures and matches ErrIncomplete.
type incompleteError struct{ errs []error }

func (e *incompleteError) Error() string {
	var b strings.Builder
	b.WriteString(ErrIncomplete.Error())
	for _, err := range e.errs {
		b.WriteString("; ")
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *incompleteError) Unwrap() []error {
	return append([]error{ErrIncomplete}, e.errs...)
}

func incomplete(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return &incompleteError{errs: errs}
}
