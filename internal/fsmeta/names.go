package fsmeta

import (
	"os/user"
	"strconv"
	"sync"
	"unicode/utf8"
)

// idNames caches user and group lookups in both directions, including misses:
// a backup asks for the same few IDs millions of times, and a lookup may
// consult NSS (LDAP, sssd) when built with cgo.
type idNames struct {
	mu        sync.Mutex
	userName  map[uint32]string
	groupName map[uint32]string
	userID    map[string]idHit
	groupID   map[string]idHit
}

type idHit struct {
	id uint32
	ok bool
}

var names = idNames{
	userName:  map[uint32]string{},
	groupName: map[uint32]string{},
	userID:    map[string]idHit{},
	groupID:   map[string]idHit{},
}

// usable keeps only names that survive JSON exactly; a mangled name could map
// to the wrong local account on a restore by name.
func usable(name string) string {
	if !utf8.ValidString(name) {
		return ""
	}
	return name
}

func lookupUserName(uid uint32) string {
	names.mu.Lock()
	defer names.mu.Unlock()
	if n, ok := names.userName[uid]; ok {
		return n
	}
	n := ""
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		n = usable(u.Username)
	}
	names.userName[uid] = n
	return n
}

func lookupGroupName(gid uint32) string {
	names.mu.Lock()
	defer names.mu.Unlock()
	if n, ok := names.groupName[gid]; ok {
		return n
	}
	n := ""
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		n = usable(g.Name)
	}
	names.groupName[gid] = n
	return n
}

func lookupUserID(name string) (uint32, bool) {
	if name == "" {
		return 0, false
	}
	names.mu.Lock()
	defer names.mu.Unlock()
	if h, ok := names.userID[name]; ok {
		return h.id, h.ok
	}
	var h idHit
	if u, err := user.Lookup(name); err == nil {
		if id, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
			h = idHit{id: uint32(id), ok: true}
		}
	}
	names.userID[name] = h
	return h.id, h.ok
}

func lookupGroupID(name string) (uint32, bool) {
	if name == "" {
		return 0, false
	}
	names.mu.Lock()
	defer names.mu.Unlock()
	if h, ok := names.groupID[name]; ok {
		return h.id, h.ok
	}
	var h idHit
	if g, err := user.LookupGroup(name); err == nil {
		if id, err := strconv.ParseUint(g.Gid, 10, 32); err == nil {
			h = idHit{id: uint32(id), ok: true}
		}
	}
	names.groupID[name] = h
	return h.id, h.ok
}

// resolveOwner returns the IDs Apply sets for m.
func resolveOwner(m *Meta, byName bool) (uid, gid uint32) {
	uid, gid = m.UID, m.GID
	if !byName {
		return uid, gid
	}
	if id, ok := lookupUserID(m.User); ok {
		uid = id
	}
	if id, ok := lookupGroupID(m.Group); ok {
		gid = id
	}
	return uid, gid
}
