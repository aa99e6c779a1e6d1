package main

import (
	"fmt"
	"math"

	"github.com/coffer-backup/coffer/internal/bytesize"
	"github.com/coffer-backup/coffer/internal/storage/ratelimit"
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

// rateFlag is a --limit-upload or --limit-download value, parsed by
// ratelimit.ParseRate (a plain number is KiB/s, as in restic; "20MiB/s").
type rateFlag struct{ n *int64 }

func (r rateFlag) String() string {
	if r.n == nil || *r.n == 0 {
		return "0"
	}
	return bytesize.Format(*r.n) + "/s"
}

func (r rateFlag) Set(v string) error {
	n, err := ratelimit.ParseRate(v)
	if err != nil {
		return err
	}
	*r.n = n
	return nil
}

func (r rateFlag) Type() string { return "rate" }
