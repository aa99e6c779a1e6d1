package fleet

import (
	"context"
	"fmt"
	"net/http"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// AlertAdmin keeps the alert channels behind the admin-only alert
// endpoints (the server's internal/server/alerting implements it). Its
// errors wrap alert.ErrInvalid or alert.ErrInsecure for a bad channel
// (400) and alert.ErrNoChannel for an unknown name (404).
type AlertAdmin interface {
	// PutChannel adds a channel or replaces the one of its name.
	PutChannel(ctx context.Context, req api.AlertAdd) (api.AlertChannel, error)
	// Channels lists the channels, by name, without their secrets.
	Channels(ctx context.Context) ([]api.AlertChannel, error)
	// RemoveChannel removes a channel, its pending alerts and its files.
	RemoveChannel(ctx context.Context, name string) error
	// TestChannel sends the channel a test alert at once; the error is
	// the channel's own (an unreachable SMTP server, a refused request).
	TestChannel(ctx context.Context, name string) error
}

// registerAlerts adds the alert endpoints, all under ActionAlerts (admins
// only), when the fleet has an AlertAdmin.
func (f *Fleet) registerAlerts(mux *http.ServeMux) {
	if f.alerts == nil {
		return
	}
	mux.HandleFunc("GET "+api.AlertsPath, f.handle(ActionAlerts, f.listAlerts))
	mux.HandleFunc("POST "+api.AlertsPath, f.handle(ActionAlerts, f.putAlert))
	mux.HandleFunc("DELETE "+api.AlertsPath+"/{name}", f.handle(ActionAlerts, f.removeAlert))
	mux.HandleFunc("POST "+api.AlertsPath+"/{name}/test", f.handle(ActionAlerts, f.testAlert))
}

func (f *Fleet) listAlerts(ctx context.Context, _ Principal, _ *http.Request) (any, error) {
	return f.alerts.Channels(ctx)
}

func (f *Fleet) putAlert(ctx context.Context, p Principal, r *http.Request) (any, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	req, err := api.DecodeAlertAdd(b)
	if err != nil {
		return nil, err
	}
	c, err := f.alerts.PutChannel(ctx, *req)
	if err != nil {
		return nil, err
	}
	f.audit(ctx, p, serverdb.ActionAlertChannel, c.Name, fmt.Sprintf("put %s channel to %s", c.Kind, c.Target))
	return c, nil
}

// alertName is the path's channel name, checked before it reaches the
// store.
func alertName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if !api.ValidName(name) || len(name) > 64 {
		return "", fmt.Errorf("%w: alert channel name %q", api.ErrInvalid, name)
	}
	return name, nil
}

func (f *Fleet) removeAlert(ctx context.Context, p Principal, r *http.Request) (any, error) {
	name, err := alertName(r)
	if err != nil {
		return nil, err
	}
	if err := f.alerts.RemoveChannel(ctx, name); err != nil {
		return nil, err
	}
	f.audit(ctx, p, serverdb.ActionAlertChannel, name, "removed")
	return struct{}{}, nil
}

func (f *Fleet) testAlert(ctx context.Context, _ Principal, r *http.Request) (any, error) {
	name, err := alertName(r)
	if err != nil {
		return nil, err
	}
	res := api.AlertTestResult{Name: name, Delivered: true}
	if err := f.alerts.TestChannel(ctx, name); err != nil {
		if ae := HTTPError(err); ae != err {
			return nil, err // not found, bad settings: the request's fault
		}
		res.Delivered, res.Error = false, err.Error()
	}
	return res, nil
}
