package restorer

import (
	"os"
	"strings"
	"sync/atomic"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"golang.org/x/sys/unix"
)

// SafeCounts are what a safe restore (Options.Safe) left out.
type SafeCounts struct {
	Devices atomic.Uint64 // character and block devices not created
	SetID   atomic.Uint64 // entries whose setuid or setgid bit was cleared
	Xattrs  atomic.Uint64 // security.* and trusted.* xattrs not set
	Flags   atomic.Uint64 // entries whose immutable or append-only flag was cleared
	Owners  atomic.Uint64 // entries that belonged to another user or group
}

// unsafeFlags are the inode flags a safe restore never sets: they would
// keep the restoring user from changing or removing what was restored.
const unsafeFlags = fsmeta.FlagImmutable | fsmeta.FlagAppend

// privilegedXattr reports whether name is an xattr a safe restore drops:
// security.* holds file capabilities and security labels, trusted.* is
// for root's own use; both grant or assert privilege on the restoring host.
func privilegedXattr(name string) bool {
	return strings.HasPrefix(name, "security.") || strings.HasPrefix(name, "trusted.")
}

// isDevice reports whether t is a device node, which a safe restore skips.
func isDevice(t fsmeta.Type) bool { return t == fsmeta.TypeCharDev || t == fsmeta.TypeBlockDev }

// meta returns the metadata to apply for n: n's own, or with Options.Safe
// a copy without privileges, owned by the restoring user, the omissions
// counted. n's metadata is never modified: trees may be shared.
func (r *Restorer) meta(n *fsmeta.Meta) *fsmeta.Meta {
	if !r.opts.Safe {
		return n
	}
	s := &r.opts.Progress.Safe
	m := *n
	if m.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		m.Mode &^= unix.S_ISUID | unix.S_ISGID
		s.SetID.Add(1)
	}
	if m.Flags&unsafeFlags != 0 {
		m.Flags &^= unsafeFlags
		s.Flags.Add(1)
	}
	if m.UID != r.uid || m.GID != r.gid {
		s.Owners.Add(1)
	}
	m.UID, m.GID, m.User, m.Group = r.uid, r.gid, "", ""
	m.Xattrs = nil
	for _, x := range n.Xattrs {
		if privilegedXattr(x.Name) {
			s.Xattrs.Add(1)
			continue
		}
		m.Xattrs = append(m.Xattrs, x)
	}
	return &m
}

// restoringUser returns the effective user and group IDs of this process.
func restoringUser() (uid, gid uint32) {
	return uint32(os.Geteuid()), uint32(os.Getegid()) // #nosec G115 -- IDs of a running process are never negative
}
