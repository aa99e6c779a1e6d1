package control

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrReplaced ends a stream when the same host opens another.
var ErrReplaced = errors.New("stream replaced by a newer stream of the same host")

// Hub keeps one open stream per host and wakes it when something for the
// host changed. It lives in one server process: with several servers on
// one database, a change committed by another server reaches these
// streams only through a database refresh or PostgreSQL LISTEN/NOTIFY
// (not built yet; docs/fleet.md).
type Hub struct {
	mu      sync.Mutex
	streams map[string]*Stream
}

// Stream is one host's registration in the hub.
type Stream struct {
	client string
	opened time.Time
	// wake has room for one signal: a change while the stream is busy is
	// kept, more changes fold into it (the stream reads the database).
	wake   chan struct{}
	cancel context.CancelCauseFunc
}

// Wake is signalled when something for the stream's host changed.
func (s *Stream) Wake() <-chan struct{} { return s.wake }

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{streams: map[string]*Stream{}} }

// Attach registers a stream of client; cancel ends it. A stream the host
// had open already is ended with ErrReplaced: a host holds at most one.
func (h *Hub) Attach(client string, opened time.Time, cancel context.CancelCauseFunc) *Stream {
	s := &Stream{client: client, opened: opened, wake: make(chan struct{}, 1), cancel: cancel}
	h.mu.Lock()
	old := h.streams[client]
	h.streams[client] = s
	h.mu.Unlock()
	if old != nil {
		old.cancel(ErrReplaced)
	}
	return s
}

// Detach removes s if it is still its host's stream.
func (h *Hub) Detach(s *Stream) {
	h.mu.Lock()
	if h.streams[s.client] == s {
		delete(h.streams, s.client)
	}
	h.mu.Unlock()
}

// Notify wakes the streams of clients; it never blocks.
func (h *Hub) Notify(clients ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range clients {
		if s := h.streams[c]; s != nil {
			select {
			case s.wake <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
	}
}

// Disconnect ends client's stream, if any, with cause.
func (h *Hub) Disconnect(client string, cause error) {
	h.mu.Lock()
	s := h.streams[client]
	h.mu.Unlock()
	if s != nil {
		s.cancel(cause)
	}
}

// Online reports whether client holds a stream, and since when.
func (h *Hub) Online(client string) (since time.Time, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.streams[client]; s != nil {
		return s.opened, true
	}
	return time.Time{}, false
}

// Count returns how many hosts hold a stream.
func (h *Hub) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.streams)
}
