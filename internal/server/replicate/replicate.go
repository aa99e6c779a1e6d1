// Package replicate copies the server's stored objects to a second coffer
// server or an S3 bucket as its clients' own ciphertext, without any key.
//
// A pass (Run) is incremental, resumable and verified: it lists the target,
// sends only what is missing, records an object only after the target's
// size and tag (an S3 ETag, a coffer server's SHA-256 digest) match what
// the primary holds, and applies the primary's deletions only after the
// target's keep-deleted time. The target's configuration lives in the
// state database; its credentials in D/replicate/NAME (see docs/replication.md).
package replicate

import (
	"path/filepath"
)

// Dir is the directory below the state directory that holds one
// directory per target.
const Dir = "replicate"

// TargetDir is the directory of target name in state directory dir.
func TargetDir(dir, name string) string { return filepath.Join(dir, Dir, name) }
