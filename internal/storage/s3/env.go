package s3

import (
	"crypto/x509"
	"fmt"
	"os"
)

// Environment variables read by ConfigFromEnv, besides the AWS_* ones of
// Credentials.
const (
	// EnvBucketLookup selects the bucket lookup: path, dns or auto.
	EnvBucketLookup = "COFFER_S3_BUCKET_LOOKUP"
	// EnvRegion is the bucket's region (AWS_REGION is read when it is unset).
	EnvRegion = "AWS_DEFAULT_REGION"
)

// ConfigFromEnv returns the Config for location (what follows "s3:"),
// with the region and bucket lookup read through getenv, the credentials
// chain of Credentials, and caFile's certificates (PEM) trusted besides the
// system's when caFile is not "".
func ConfigFromEnv(location string, getenv func(string) string, caFile string) (Config, error) {
	loc, err := ParseLocation(location)
	if err != nil {
		return Config{}, err
	}
	lookup, err := ParseBucketLookup(getenv(EnvBucketLookup))
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", EnvBucketLookup, err)
	}
	region := getenv(EnvRegion)
	if region == "" {
		region = getenv("AWS_REGION")
	}
	cfg := Config{Location: loc, Region: region, BucketLookup: lookup, Creds: Credentials()}
	if caFile != "" {
		if cfg.RootCAs, err = LoadCAs(caFile); err != nil {
			return Config{}, err
		}
	}
	return cfg, nil
}

// LoadCAs returns the system's certificate pool with the PEM certificates
// of file added. A file without any certificate is an error.
func LoadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file) // #nosec G304 -- the CA file the user named
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA certificates: no PEM certificate in %s", file)
	}
	return pool, nil
}
