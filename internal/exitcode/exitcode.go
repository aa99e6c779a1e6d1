// Package exitcode defines coffer's process exit codes in one place and maps
// errors to them. docs/exit-codes.md documents the same table for users.
package exitcode

import (
	"context"
	"errors"
)

// Exit codes. They are part of coffer's interface: scripts branch on them.
const (
	OK              = 0   // success
	Error           = 1   // any other error
	Usage           = 2   // bad command line
	PartialBackup   = 3   // backup finished but some sources were unreadable
	NoRepository    = 10  // repository does not exist
	Locked          = 11  // repository is locked by another process
	WrongPassword   = 12  // no key slot opens with the given secret
	RolledBack      = 13  // repository no longer shows snapshots this client has seen
	TLSPolicyFailed = 20  // tls scan: the server offers something weaker than the policy
	Interrupted     = 130 // SIGINT/SIGTERM
)

// Sentinel errors that map to exit codes. Packages wrap these (or their own
// sentinels are registered with Register) so the CLI maps them in one place.
var (
	ErrUsage         = errors.New("usage error")
	ErrPartialBackup = errors.New("some sources could not be read")
	ErrTLSPolicy     = errors.New("server is weaker than the TLS policy")
)

var table []struct {
	err  error
	code int
}

// Register maps err (tested with errors.Is) to code. It is called from init
// functions of packages that define sentinel errors.
func Register(err error, code int) {
	table = append(table, struct {
		err  error
		code int
	}{err, code})
}

func init() {
	Register(ErrUsage, Usage)
	Register(ErrPartialBackup, PartialBackup)
	Register(ErrTLSPolicy, TLSPolicyFailed)
	Register(context.Canceled, Interrupted)
}

// For returns the exit code for err; nil maps to OK.
func For(err error) int {
	if err == nil {
		return OK
	}
	for _, e := range table {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return Error
}
