package alert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Dispatcher; every zero value is useful.
type Options struct {
	// Retries: after the nth failed attempt an item is tried again
	// InitialInterval × Factor^(n−1) later, at most MaxInterval, until
	// MaxAttempts attempts have failed; then it is Dead.
	InitialInterval time.Duration // 0: 30 s
	Factor          float64       // 0: 2; at least 1
	MaxInterval     time.Duration // 0: 1 h
	MaxAttempts     int           // 0: 10
	// Timeout bounds one delivery attempt (0: 30 s).
	Timeout time.Duration
	// Poll is how often each channel's worker looks for due items (items
	// enqueued by this dispatcher wake it at once) and the channel list is
	// read again (0: 5 s).
	Poll time.Duration
	// Keep is how long delivered and dead items stay in the outbox
	// (0: 30 days).
	Keep time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger gets a line per failed attempt (nil: none).
	Logger *slog.Logger
	// OnAttempt, if set, is called after every delivery attempt.
	OnAttempt func(Attempt)
}

// Attempt is the outcome of one delivery attempt.
type Attempt struct {
	Channel string
	IDs     []int64
	At      time.Time
	Err     error     // nil: delivered
	Next    time.Time // after a failure that is not Dead
	Dead    bool
}

// Dispatcher queues events in a Store and delivers them, one worker per
// channel, so a slow or unreachable channel delays only itself.
type Dispatcher struct {
	store Store
	opts  Options

	mu      sync.Mutex
	workers map[string]*worker
	reload  chan struct{}
}

type worker struct {
	channel atomic.Pointer[Channel]
	wake    chan struct{}
	cancel  context.CancelFunc
}

// NewDispatcher returns a dispatcher over store; Run delivers.
func NewDispatcher(store Store, opts Options) (*Dispatcher, error) {
	if store == nil {
		return nil, errors.New("alert: nil store")
	}
	if opts.InitialInterval < 0 || opts.MaxInterval < 0 || opts.MaxAttempts < 0 || opts.Timeout < 0 || opts.Poll < 0 || opts.Keep < 0 {
		return nil, fmt.Errorf("%w: dispatcher options must not be negative", ErrInvalid)
	}
	if opts.Factor != 0 && (opts.Factor < 1 || opts.Factor > 100 || math.IsNaN(opts.Factor)) {
		return nil, fmt.Errorf("%w: retry factor %v is not 1 to 100", ErrInvalid, opts.Factor)
	}
	setDefault(&opts.InitialInterval, 30*time.Second)
	setDefault(&opts.MaxInterval, time.Hour)
	setDefault(&opts.Timeout, 30*time.Second)
	setDefault(&opts.Poll, 5*time.Second)
	setDefault(&opts.Keep, 30*24*time.Hour)
	if opts.Factor == 0 {
		opts.Factor = 2
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 10
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{store: store, opts: opts, workers: map[string]*worker{}, reload: make(chan struct{}, 1)}, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

// Backoff is the wait after the nth failed attempt (n ≥ 1).
func (o Options) Backoff(n int) time.Duration {
	d := float64(o.InitialInterval) * math.Pow(o.Factor, float64(max(n-1, 0)))
	if d > float64(o.MaxInterval) || math.IsInf(d, 0) {
		return o.MaxInterval
	}
	return time.Duration(d)
}

// Enqueue stores e for every channel that Matches it and wakes their
// workers. It returns once the items are in the store, without waiting
// for any delivery, with the number of channels that will get e.
func (d *Dispatcher) Enqueue(ctx context.Context, e Event) (int, error) {
	if err := e.Validate(); err != nil {
		return 0, err
	}
	e = e.Normalize()
	channels, err := d.store.AlertChannels(ctx)
	if err != nil {
		return 0, fmt.Errorf("alert: read channels: %w", err)
	}
	now := d.opts.Now()
	var items []Item
	for _, c := range channels {
		if !c.Matches(e) {
			continue
		}
		next := now
		if c.DigestAt != "" {
			next = nextDigest(c.DigestAt, now)
		}
		items = append(items, Item{Channel: c.Name, Event: e, Created: now, NextAttempt: next})
	}
	if len(items) == 0 {
		return 0, nil
	}
	if err := d.store.EnqueueAlerts(ctx, items); err != nil {
		return 0, fmt.Errorf("alert: enqueue %s: %w", e.Kind, err)
	}
	d.mu.Lock()
	for _, it := range items {
		if w := d.workers[it.Channel]; w != nil {
			poke(w.wake)
		}
	}
	d.mu.Unlock()
	return len(items), nil
}

// Reload makes Run read the channel list now (after a channel was added,
// changed or removed) rather than at its next poll.
func (d *Dispatcher) Reload() { poke(d.reload) }

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Test sends a test event to the named channel at once, past the outbox,
// and returns the channel's error, if any.
func (d *Dispatcher) Test(ctx context.Context, name string) error {
	c, err := d.channel(ctx, name)
	if err != nil {
		return err
	}
	if err := c.CheckFiles(); err != nil {
		return err
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	now := d.opts.Now().UTC()
	e := Event{Kind: Test, Time: now, Summary: "a test alert from coffer: channel " + c.Name + " works"}
	return d.deliver(ctx, c, delivery{channel: c.Name, ids: []string{"test-" + hex.EncodeToString(id)}, events: []Event{e}})
}

func (d *Dispatcher) channel(ctx context.Context, name string) (Channel, error) {
	channels, err := d.store.AlertChannels(ctx)
	if err != nil {
		return Channel{}, fmt.Errorf("alert: read channels: %w", err)
	}
	for _, c := range channels {
		if c.Name == name {
			return c, nil
		}
	}
	return Channel{}, fmt.Errorf("%w: %q", ErrNoChannel, clip(name, 64))
}

// deliver makes one attempt at d over c.
func (d *Dispatcher) deliver(ctx context.Context, c Channel, dl delivery) error {
	var err error
	switch {
	case c.Email != nil:
		err = sendMail(ctx, c.Email, dl.events, d.opts.Timeout)
	case c.Webhook != nil:
		err = postWebhook(ctx, c.Webhook, dl, d.opts.Timeout, d.opts.Now())
	case c.Syslog != nil:
		err = sendSyslog(ctx, c.Syslog, dl, d.opts.Timeout)
	default:
		err = fmt.Errorf("%w: channel %s has no settings", ErrInvalid, c.Name)
	}
	if err != nil {
		return fmt.Errorf("channel %s: %w", c.Name, err)
	}
	return nil
}

// Run delivers until ctx is done: it keeps one worker per channel, reads
// the channel list every Poll (or at Reload) and prunes old items hourly.
// It returns ctx's error once every worker has stopped.
func (d *Dispatcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer func() {
		d.mu.Lock()
		for name, w := range d.workers {
			w.cancel()
			delete(d.workers, name)
		}
		d.mu.Unlock()
		wg.Wait()
	}()
	tick := time.NewTicker(d.opts.Poll)
	defer tick.Stop()
	var lastPrune time.Time
	for {
		d.sync(ctx, &wg)
		if now := d.opts.Now(); now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			if _, err := d.store.PruneAlerts(ctx, now.Add(-d.opts.Keep)); err != nil && ctx.Err() == nil {
				d.opts.Logger.Warn("alert: prune outbox", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case <-d.reload:
		}
	}
}

// sync starts a worker for each new channel, hands changed configurations
// to running workers and stops the workers of removed channels.
func (d *Dispatcher) sync(ctx context.Context, wg *sync.WaitGroup) {
	channels, err := d.store.AlertChannels(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.opts.Logger.Warn("alert: read channels", "err", err)
		}
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	seen := map[string]bool{}
	for _, c := range channels {
		seen[c.Name] = true
		if w := d.workers[c.Name]; w != nil {
			w.channel.Store(&c)
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := &worker{wake: make(chan struct{}, 1), cancel: cancel}
		w.channel.Store(&c)
		d.workers[c.Name] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(wctx, w)
		}()
	}
	for name, w := range d.workers {
		if !seen[name] {
			w.cancel()
			delete(d.workers, name)
		}
	}
}

// Claim sizes: a digest takes every due item in one message.
const (
	claimOne    = 1
	claimDigest = 1000
)

// work delivers one channel's due items until ctx is done.
func (d *Dispatcher) work(ctx context.Context, w *worker) {
	tick := time.NewTicker(d.opts.Poll)
	defer tick.Stop()
	for ctx.Err() == nil {
		c := *w.channel.Load()
		limit := claimOne
		if c.DigestAt != "" {
			limit = claimDigest
		}
		lease := 2*d.opts.Timeout + time.Minute
		items, err := d.store.ClaimAlerts(ctx, c.Name, d.opts.Now(), lease, limit)
		if err != nil && ctx.Err() == nil {
			d.opts.Logger.Warn("alert: claim outbox items", "channel", c.Name, "err", err)
		}
		if len(items) > 0 {
			d.attempt(ctx, c, items)
			continue
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-w.wake:
		}
	}
}

// attempt delivers items (one message) and records the outcome.
func (d *Dispatcher) attempt(ctx context.Context, c Channel, items []Item) {
	dl := delivery{channel: c.Name}
	ids := make([]int64, len(items))
	attempts := 0
	for i, it := range items {
		ids[i] = it.ID
		dl.ids = append(dl.ids, strconv.FormatInt(it.ID, 10))
		dl.events = append(dl.events, it.Event)
		attempts = max(attempts, it.Attempts)
	}
	err := d.deliver(ctx, c, dl)
	if err != nil && ctx.Err() != nil {
		return // shutting down: the lease brings the items back
	}
	// What was delivered is recorded even while shutting down.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	at := d.opts.Now()
	a := Attempt{Channel: c.Name, IDs: ids, At: at, Err: err}
	if err == nil {
		if err := d.store.MarkAlertsDelivered(ctx, ids, at); err != nil {
			d.opts.Logger.Warn("alert: mark delivered", "channel", c.Name, "err", err)
		}
	} else {
		n := attempts + 1
		a.Dead = n >= d.opts.MaxAttempts
		if !a.Dead {
			a.Next = at.Add(d.opts.Backoff(n))
		}
		d.opts.Logger.Warn("alert: delivery failed", "channel", c.Name, "items", ids, "attempt", n, "dead", a.Dead, "err", err)
		f := Failure{At: at, Error: clip(err.Error(), 1024), Next: a.Next, Dead: a.Dead}
		if err := d.store.MarkAlertsFailed(ctx, ids, f); err != nil {
			d.opts.Logger.Warn("alert: mark failed", "channel", c.Name, "err", err)
		}
	}
	if d.opts.OnAttempt != nil {
		d.opts.OnAttempt(a)
	}
}
