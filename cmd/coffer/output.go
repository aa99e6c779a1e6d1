package main

import (
	"encoding/json"
	"io"
)

// printJSONLine writes one compact JSON value per line (for streaming lists).
func printJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
