package main

import (
	"context"
	"errors"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/fleet/fleetclient"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
)

// Exit codes. They are part of coffer's interface: scripts branch on them.
// docs/exit-codes.md documents the same table for users.
const (
	exitOK              = 0   // success
	exitError           = 1   // any other error
	exitUsage           = 2   // bad command line
	exitPartialBackup   = 3   // backup wrote its snapshot but some sources were missing or unreadable
	exitNoRepository    = 10  // repository does not exist
	exitLocked          = 11  // repository is locked by another process
	exitWrongPassword   = 12  // no key slot opens with the given secret
	exitRolledBack      = 13  // repository no longer shows snapshots this client has seen
	exitForbidden       = 14  // the server refused a fleet call for lack of rights
	exitJobFailed       = 15  // fleet --wait: the job failed, or was skipped or missed
	exitJobCancelled    = 16  // fleet --wait: the job was cancelled
	exitTLSPolicyFailed = 20  // tls scan: the server offers something weaker than the policy
	exitAuditLogBad     = 21  // server audit verify: the audit log was edited, cut, reordered, or does not end at the kept head
	exitInterrupted     = 130 // SIGINT/SIGTERM
)

// Errors the commands themselves return; the packages below define their
// own sentinels, mapped in exitCodes.
var (
	errUsage         = errors.New("usage error")
	errPartialBackup = errors.New("some sources are missing or could not be read")
	errTLSPolicy     = errors.New("server is weaker than the TLS policy")
	// The end of a job a fleet command waited for (--wait), when it did
	// not succeed; a warning exits as a partial backup does.
	errJobFailed    = errors.New("the job did not succeed")
	errJobCancelled = errors.New("the job was cancelled")
	errJobWarning   = errors.New("the job ended with a warning")
)

// exitCode returns the exit code for err; nil maps to exitOK. Its table,
// tested with errors.Is in order, is the one place that maps errors to exit
// codes.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	table := [...]struct {
		err  error
		code int
	}{
		{errUsage, exitUsage},
		{errPartialBackup, exitPartialBackup},
		{errJobWarning, exitPartialBackup},
		{errJobFailed, exitJobFailed},
		{errJobCancelled, exitJobCancelled},
		{errTLSPolicy, exitTLSPolicyFailed},
		{auditlog.ErrTampered, exitAuditLogBad},
		{auditlog.ErrTruncated, exitAuditLogBad},
		{auditlog.ErrAheadOfHead, exitAuditLogBad},
		{auditlog.ErrPartialLine, exitAuditLogBad},
		{context.Canceled, exitInterrupted},
		{storage.ErrNoRepository, exitNoRepository},
		{repository.ErrLocked, exitLocked},
		{keyring.ErrWrongPassword, exitWrongPassword},
		{repository.ErrRolledBack, exitRolledBack},
		{fleetclient.ErrForbidden, exitForbidden},
	}
	for _, e := range table {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return exitError
}
