package s3

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Scheme is the location scheme of S3 repositories: s3:https://HOST/BUCKET.
const Scheme = "s3"

// ErrLocation is wrapped by ParseLocation for a location it refuses.
var ErrLocation = errors.New("invalid S3 location")

// maxPrefix bounds the key prefix, leaving room for the object names under
// it within S3's 1024-byte keys.
const maxPrefix = 512

// Location is where an S3 repository lives. Its zero value names nothing.
type Location struct {
	// Endpoint is the server's HOST or HOST:PORT.
	Endpoint string
	// Secure selects https (true) or plain http.
	Secure bool
	// Bucket holds the repository.
	Bucket string
	// Prefix is the key prefix of every object, without leading or
	// trailing '/'; "" puts the repository at the bucket's root.
	Prefix string
}

// String returns the location in the form ParseLocation reads, with the
// "s3:" scheme. It never holds credentials: ParseLocation refuses them.
func (l Location) String() string {
	scheme := "http"
	if l.Secure {
		scheme = "https"
	}
	s := "s3:" + scheme + "://" + l.Endpoint + "/" + l.Bucket
	if l.Prefix != "" {
		s += "/" + l.Prefix
	}
	return s
}

// ParseLocation reads what follows "s3:" in a repository location:
// https://HOST[:PORT]/BUCKET[/PREFIX] or http://... (restic's spelling);
// HOST[:PORT]/BUCKET[/PREFIX] without a scheme means https. BUCKET follows
// S3's bucket naming rules; PREFIX is '/'-separated segments of letters,
// digits, '.', '_' and '-' (no "." or ".." segment). User information,
// queries and fragments are refused: credentials come from the
// environment, never from a location that gets printed. Errors wrap
// ErrLocation and never repeat what preceded an '@'.
func ParseLocation(rest string) (Location, error) {
	raw := rest
	secure := true
	switch {
	case strings.HasPrefix(rest, "https://"):
		rest = strings.TrimPrefix(rest, "https://")
	case strings.HasPrefix(rest, "http://"):
		rest, secure = strings.TrimPrefix(rest, "http://"), false
	case strings.Contains(rest, "://"):
		return Location{}, fmt.Errorf("%w: only https:// and http:// endpoints are supported", ErrLocation)
	}
	if strings.ContainsAny(rest, "@?#") {
		// The part before '@' may be a secret: do not repeat the location.
		return Location{}, fmt.Errorf("%w: user information, queries and fragments are not allowed (credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)", ErrLocation)
	}
	host, path, _ := strings.Cut(rest, "/")
	if err := checkHost(host); err != nil {
		return Location{}, fmt.Errorf("%w: %q: %v", ErrLocation, raw, err)
	}
	bucket, prefix, _ := strings.Cut(path, "/")
	if bucket == "" {
		return Location{}, fmt.Errorf("%w: %q names no bucket (s3:https://HOST/BUCKET[/PREFIX])", ErrLocation, raw)
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return Location{}, fmt.Errorf("%w: %q: bucket %q: %v", ErrLocation, raw, bucket, err)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if err := checkPrefix(prefix); err != nil {
		return Location{}, fmt.Errorf("%w: %q: prefix: %v", ErrLocation, raw, err)
	}
	return Location{Endpoint: host, Secure: secure, Bucket: bucket, Prefix: prefix}, nil
}

// checkHost accepts HOST or HOST:PORT with a DNS name, IPv4 address or a
// bracketed IPv6 address, and a port from 1 to 65535.
func checkHost(hostport string) error {
	if hostport == "" {
		return errors.New("no host")
	}
	u := url.URL{Host: hostport}
	host, port := u.Hostname(), u.Port()
	rebuilt := host
	if strings.Contains(host, ":") {
		if net.ParseIP(host) == nil {
			return fmt.Errorf("bad IPv6 address %q", host)
		}
		rebuilt = "[" + host + "]"
	} else if !validHostname(host) {
		return fmt.Errorf("bad host name %q", host)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return fmt.Errorf("bad port %q", port)
		}
		rebuilt += ":" + port
	}
	if rebuilt != hostport {
		return fmt.Errorf("bad host %q", hostport)
	}
	return nil
}

// validHostname accepts DNS names and IPv4 addresses: labels of letters,
// digits and '-', not starting or ending with '-'.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// checkPrefix accepts "" or '/'-separated segments of [A-Za-z0-9._-],
// none of them empty, "." or "..".
func checkPrefix(p string) error {
	if p == "" {
		return nil
	}
	if len(p) > maxPrefix {
		return fmt.Errorf("longer than %d bytes", maxPrefix)
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			return errors.New("empty segment")
		case ".", "..":
			return fmt.Errorf("segment %q", seg)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("character %q in segment %q", c, seg)
			}
		}
	}
	return nil
}
