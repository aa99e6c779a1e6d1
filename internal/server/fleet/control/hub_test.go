package control

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestHubReplacesAStreamOfTheSameHost(t *testing.T) {
	t.Parallel()
	h := NewHub()
	ctx1, cancel1 := context.WithCancelCause(context.Background())
	s1 := h.Attach("web1", time.Unix(1, 0), cancel1)
	ctx2, cancel2 := context.WithCancelCause(context.Background())
	s2 := h.Attach("web1", time.Unix(2, 0), cancel2)
	if !errors.Is(context.Cause(ctx1), ErrReplaced) {
		t.Fatalf("first stream's cause %v, want ErrReplaced", context.Cause(ctx1))
	}
	if ctx2.Err() != nil {
		t.Fatal("the new stream was ended")
	}
	// The old stream detaching must not remove the new one.
	h.Detach(s1)
	if since, ok := h.Online("web1"); !ok || !since.Equal(time.Unix(2, 0)) {
		t.Fatalf("online %v since %v, want the second stream", ok, since)
	}
	h.Notify("web1", "nobody")
	select {
	case <-s2.Wake():
	default:
		t.Fatal("Notify did not wake the host's stream")
	}
	select {
	case <-s1.Wake():
		t.Fatal("Notify woke a replaced stream")
	default:
	}
	h.Detach(s2)
	if _, ok := h.Online("web1"); ok || h.Count() != 0 {
		t.Fatal("host still online after its stream detached")
	}
}

func TestHubNotifyNeverBlocksAndFolds(t *testing.T) {
	t.Parallel()
	h := NewHub()
	_, cancel := context.WithCancelCause(context.Background())
	s := h.Attach("a", time.Now(), cancel)
	for range 1000 {
		h.Notify("a")
	}
	<-s.Wake()
	select {
	case <-s.Wake():
		t.Fatal("a thousand notifications left more than one wake-up")
	default:
	}
}

func TestHubDisconnect(t *testing.T) {
	t.Parallel()
	h := NewHub()
	ctx, cancel := context.WithCancelCause(context.Background())
	h.Attach("a", time.Now(), cancel)
	cause := errors.New("revoked")
	h.Disconnect("a", cause)
	h.Disconnect("nobody", cause)
	if !errors.Is(context.Cause(ctx), cause) {
		t.Fatalf("cause %v", context.Cause(ctx))
	}
}
