package alert

import (
	"context"
	"time"
)

// ItemState is where an outbox item is.
type ItemState string

// Outbox item states.
const (
	Pending   ItemState = "pending"   // waiting for its next attempt
	Delivered ItemState = "delivered" // the channel accepted it
	Dead      ItemState = "dead"      // every attempt failed; kept for the record
)

// Item is one event queued for one channel.
type Item struct {
	ID          int64 // assigned by the outbox
	Channel     string
	Event       Event
	Created     time.Time
	NextAttempt time.Time // when it is due; for a digest channel, the digest's time
	Attempts    int       // failed attempts so far
	LastError   string
	State       ItemState
	Done        time.Time // when it was delivered or given up; zero while pending
}

// Failure records a failed attempt at some items.
type Failure struct {
	At    time.Time
	Error string    // stored and shown; never holds a secret
	Next  time.Time // the next attempt, unless Dead
	Dead  bool      // no more attempts
}

// Outbox is the durable queue between Enqueue and delivery. A server's
// state database implements it (serverdb); implementations are safe for
// concurrent use, also by several processes sharing one database.
type Outbox interface {
	// EnqueueAlerts stores items as Pending with 0 attempts, in one
	// transaction (ID, Attempts, State, LastError and Done are ignored).
	EnqueueAlerts(ctx context.Context, items []Item) error
	// ClaimAlerts returns up to limit Pending items of channel due at now
	// (NextAttempt <= now), earliest first, and moves their NextAttempt to
	// now+lease in the same transaction, so that no other dispatcher takes
	// them meanwhile and a dispatcher that dies with them lets them come
	// back after the lease.
	ClaimAlerts(ctx context.Context, channel string, now time.Time, lease time.Duration, limit int) ([]Item, error)
	// MarkAlertsDelivered marks items Delivered at at.
	MarkAlertsDelivered(ctx context.Context, ids []int64, at time.Time) error
	// MarkAlertsFailed adds one failed attempt to each item and records f:
	// the item is Dead if f.Dead, due again at f.Next otherwise.
	MarkAlertsFailed(ctx context.Context, ids []int64, f Failure) error
	// AlertItems returns the items of channel ("" for every channel),
	// oldest first.
	AlertItems(ctx context.Context, channel string) ([]Item, error)
	// PruneAlerts deletes Delivered and Dead items done before before and
	// returns how many went.
	PruneAlerts(ctx context.Context, before time.Time) (int64, error)
}

// ChannelStore keeps the channels' configurations.
type ChannelStore interface {
	// AlertChannels returns every channel, ordered by name.
	AlertChannels(ctx context.Context) ([]Channel, error)
	// PutAlertChannel adds a channel or replaces the one of that name; it
	// refuses one that does not Validate.
	PutAlertChannel(ctx context.Context, c Channel) error
	// RemoveAlertChannel removes a channel and its pending items
	// (ErrNoChannel if there is none of that name).
	RemoveAlertChannel(ctx context.Context, name string) error
}

// Store is what a Dispatcher needs.
type Store interface {
	Outbox
	ChannelStore
}
