package s3

import (
	"context"
	"net"
)

// NewRedirected returns the backend for cfg without probing the bucket,
// with every connection made to addr whatever host a request names: tests
// reach a server on loopback under a host name that does not resolve.
func NewRedirected(cfg Config, addr string) (*S3, error) {
	s, err := newS3(cfg)
	if err != nil {
		return nil, err
	}
	s.transport.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return s, nil
}
