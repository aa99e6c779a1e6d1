package main

import (
	"fmt"
	"math"

	"github.com/coffer-backup/coffer/internal/bytesize"
)

// sizeFlag is a flag that takes a byte size in internal/bytesize's grammar
// ("1M", "512KiB", "1048576"), the one grammar every size flag shares.
type sizeFlag struct{ n *int }

func newSizeFlag(n *int, def int) sizeFlag {
	*n = def
	return sizeFlag{n}
}

func (s sizeFlag) String() string {
	if s.n == nil {
		return ""
	}
	return bytesize.Format(int64(*s.n))
}

func (s sizeFlag) Set(v string) error {
	n, err := bytesize.Parse(v)
	if err != nil {
		return err
	}
	if n > math.MaxInt32 {
		return fmt.Errorf("%s is too large", v)
	}
	*s.n = int(n)
	return nil
}

func (s sizeFlag) Type() string { return "size" }
