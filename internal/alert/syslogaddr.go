package alert

import (
	"fmt"
	"strings"
)

// ParseSyslogAddress reads the address of a syslog channel as the CLI
// takes it: udp://HOST:PORT, tcp://HOST:PORT, unix:///PATH (a stream
// socket), unixgram:///PATH (a datagram socket), or "" for the
// datagram socket /dev/log. It returns SyslogConfig's Network and
// Address, checked as Validate checks them.
func ParseSyslogAddress(s string) (network, address string, err error) {
	if s == "" {
		return "unixgram", "", nil
	}
	scheme, rest, ok := strings.Cut(s, "://")
	switch {
	case !ok:
		return "", "", fmt.Errorf("%w: syslog address %q: want udp://HOST:PORT, tcp://HOST:PORT, unix:///PATH or unixgram:///PATH", ErrInvalid, clip(s, 80))
	case scheme == "udp" || scheme == "tcp" || scheme == "unix" || scheme == "unixgram":
	default:
		return "", "", fmt.Errorf("%w: syslog address %q: scheme %q is not udp, tcp, unix or unixgram", ErrInvalid, clip(s, 80), clip(scheme, 16))
	}
	cfg := SyslogConfig{Network: scheme, Address: rest}
	if err := cfg.validate(); err != nil {
		return "", "", err
	}
	return scheme, rest, nil
}
