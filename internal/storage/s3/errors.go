package s3

import (
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/minio/minio-go/v7"

	"github.com/coffer-backup/coffer/internal/storage"
)

// ErrCredentials is wrapped (with storage.ErrForbidden) when the server
// does not accept the credentials: an unknown access key or a signature
// made with the wrong secret.
var ErrCredentials = errors.New("the S3 server refused the credentials (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")

// ErrNoCredentials is returned when neither the environment nor the
// shared credentials file gives an access key.
var ErrNoCredentials = errors.New("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a shared credentials file (~/.aws/credentials or AWS_SHARED_CREDENTIALS_FILE)")

// ErrUnreachable is wrapped when no connection to the endpoint could be
// made.
var ErrUnreachable = errors.New("cannot reach the S3 endpoint")

// mapError turns a minio-go error into one that wraps the storage
// sentinel callers branch on, keeping the server's code and message. It
// never includes credentials: minio-go's errors carry none.
func mapError(err error) error {
	resp := minio.ToErrorResponse(err)
	if resp.Code == "" && resp.StatusCode == 0 {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		return err
	}
	var sentinel error
	switch resp.Code {
	case minio.NoSuchKey, "NotFound":
		sentinel = storage.ErrNotFound
	case minio.NoSuchBucket:
		sentinel = storage.ErrNoRepository
	case "InvalidRange":
		sentinel = storage.ErrRange
	case "PreconditionFailed":
		sentinel = storage.ErrExists
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired",
		"XAdminUserNotFound": // versitygw's answer for an unknown access key
		return fmt.Errorf("%w: %w (%s)", ErrCredentials, storage.ErrForbidden, describe(resp))
	case "AccessDenied", "AllAccessDisabled":
		sentinel = storage.ErrForbidden
	}
	if sentinel == nil {
		switch resp.StatusCode {
		case http.StatusNotFound:
			sentinel = storage.ErrNotFound
		case http.StatusRequestedRangeNotSatisfiable:
			sentinel = storage.ErrRange
		case http.StatusPreconditionFailed:
			sentinel = storage.ErrExists
		case http.StatusForbidden:
			sentinel = storage.ErrForbidden
		}
	}
	if sentinel == nil {
		return fmt.Errorf("s3: %s", describe(resp))
	}
	return fmt.Errorf("%w (s3: %s)", sentinel, describe(resp))
}

// describe is the server's answer in one line: code, message, status.
func describe(r minio.ErrorResponse) string {
	s := r.Code
	if r.Message != "" {
		s += ": " + r.Message
	}
	if r.StatusCode != 0 {
		s += fmt.Sprintf(" (HTTP %d)", r.StatusCode)
	}
	return s
}
