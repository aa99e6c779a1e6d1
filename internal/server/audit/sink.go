package audit

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coffer-backup/coffer/internal/auditlog"
)

// DefaultSinkQueue is how many entries an AsyncSink holds for a slow sink.
const DefaultSinkQueue = 4096

// AsyncSink hands entries to another sink from its own goroutine, so that
// a syslog server that is slow or down never holds up an append: Write
// only queues. When the queue is full the entry is dropped for that sink
// (the files keep it) and counted; failures and drops are logged, the
// first and then every 100th.
type AsyncSink struct {
	next auditlog.Sink
	log  *slog.Logger
	q    chan auditlog.Entry
	done chan struct{}
	once sync.Once

	dropped, failed atomic.Uint64
}

// NewAsyncSink starts a goroutine writing to next; queue 0 means
// DefaultSinkQueue. Close stops it.
func NewAsyncSink(next auditlog.Sink, queue int, log *slog.Logger) *AsyncSink {
	if queue <= 0 {
		queue = DefaultSinkQueue
	}
	if log == nil {
		log = slog.Default()
	}
	s := &AsyncSink{next: next, log: log, q: make(chan auditlog.Entry, queue), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *AsyncSink) run() {
	defer close(s.done)
	for e := range s.q {
		if err := s.next.Write(e); err != nil {
			if n := s.failed.Add(1); n%100 == 1 {
				s.log.Warn("audit log: syslog write failed; the entry stays in the files", "seq", e.Seq, "failures", n, "err", err)
			}
		}
	}
}

// Write implements auditlog.Sink: it queues e and never blocks.
func (s *AsyncSink) Write(e auditlog.Entry) error {
	select {
	case s.q <- e:
		return nil
	default:
	}
	n := s.dropped.Add(1)
	if n%100 == 1 {
		s.log.Warn("audit log: syslog queue full, entry not sent; the files keep it", "seq", e.Seq, "dropped", n)
	}
	return nil
}

// Failed and Dropped count the entries the sink failed to write and those
// dropped because its queue was full.
func (s *AsyncSink) Failed() uint64  { return s.failed.Load() }
func (s *AsyncSink) Dropped() uint64 { return s.dropped.Load() }

// Close writes what is queued and stops the goroutine. Call it after the
// log is closed: Write must not be called afterwards.
func (s *AsyncSink) Close() {
	s.once.Do(func() { close(s.q) })
	<-s.done
}

// ParseSyslogAddr splits `server run --audit-syslog`'s value,
// NETWORK:ADDRESS, where NETWORK is udp, tcp, unix (stream) or unixgram:
// "udp:127.0.0.1:514", "tcp:[::1]:601", "unixgram:/dev/log".
func ParseSyslogAddr(s string) (network, addr string, err error) {
	network, addr, ok := strings.Cut(s, ":")
	if !ok || addr == "" {
		return "", "", fmt.Errorf("syslog address %q: want NETWORK:ADDRESS, e.g. udp:127.0.0.1:514 or unixgram:/dev/log", s)
	}
	switch network {
	case "udp", "tcp":
		if !strings.Contains(addr, ":") {
			return "", "", fmt.Errorf("syslog address %q: want %s:HOST:PORT", s, network)
		}
	case "unix", "unixgram":
		if !strings.HasPrefix(addr, "/") {
			return "", "", fmt.Errorf("syslog address %q: want %s:/ABSOLUTE/SOCKET/PATH", s, network)
		}
	default:
		return "", "", fmt.Errorf("syslog address %q: network must be udp, tcp, unix or unixgram", s)
	}
	return network, addr, nil
}
