package main

import (
	"os"
	"path/filepath"
)

// identityDir is where `coffer enroll` keeps the client's key and
// certificates: $COFFER_IDENTITY or ~/.config/coffer/identity.
func identityDir() string {
	if d := os.Getenv("COFFER_IDENTITY"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "coffer", "identity")
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "identity"
	}
	return filepath.Join(h, ".config", "coffer", "identity")
}
