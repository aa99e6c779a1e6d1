package api

import (
	"encoding/json"
	"fmt"
)

// The alert channels' administration (docs/fleet.md, "Alerts"), for
// admins only.
const (
	// AlertsPath: GET lists the channels ([]AlertChannel), POST adds or
	// replaces one (AlertAdd, answered with its AlertChannel);
	// DELETE AlertsPath/NAME removes one; POST AlertsPath/NAME/test sends
	// it a test alert at once (AlertTestResult).
	AlertsPath = "/v1/fleet/alerts"
	// MaxAlertSecret bounds AlertAdd.Secret (as the server's secret files).
	MaxAlertSecret = 4 << 10
	// MaxAlertCA bounds AlertAdd.CA.
	MaxAlertCA = 128 << 10
)

// AlertAdd is the body of POST AlertsPath: a channel as the server stores
// it (alert.Channel's JSON) without any file path, and the contents of
// the files the server keeps for it. Secret is the SMTP password of an
// email channel with a user, or a webhook's HMAC key; CA a PEM bundle the
// channel trusts instead of the system's CAs. The server writes them to
// files of mode 0600 in its state directory and fills in their paths
// itself: a caller never names a file on the server.
type AlertAdd struct {
	Channel json.RawMessage `json:"channel"`
	Secret  []byte          `json:"secret,omitempty"`
	CA      []byte          `json:"ca,omitempty"`
}

// AlertChannel is one entry of GET AlertsPath. It never holds a secret:
// HasSecret says whether the server keeps one, and Target leaves out a
// webhook URL's query.
type AlertChannel struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`   // email, webhook or syslog
	Target    string   `json:"target"` // SMTP HOST:PORT, the URL without its query, or the syslog address
	Security  string   `json:"security,omitempty"`
	User      string   `json:"user,omitempty"`
	From      string   `json:"from,omitempty"`
	To        []string `json:"to,omitempty"`
	HasSecret bool     `json:"has_secret"`
	HasCA     bool     `json:"has_ca"`
	Events    []string `json:"events"`  // empty: all
	Clients   []string `json:"clients"` // empty with Groups empty: every host and the server's own events
	Groups    []string `json:"groups"`
	DigestAt  string   `json:"digest_at,omitempty"`
	Pending   int      `json:"pending"`    // items waiting for delivery
	Dead      int      `json:"dead"`       // items given up on (kept 30 days)
	LastError string   `json:"last_error"` // of the newest failed attempt, if any
}

// AlertTestResult answers POST AlertsPath/NAME/test.
type AlertTestResult struct {
	Name      string `json:"name"`
	Delivered bool   `json:"delivered"`
	Error     string `json:"error,omitempty"`
}

// DecodeAlertAdd decodes a POST AlertsPath body; the channel itself is
// checked by the server (alert.ParseChannel), which names the field.
func DecodeAlertAdd(body []byte) (*AlertAdd, error) {
	var a AlertAdd
	if err := decodeStrict(body, &a); err != nil {
		return nil, err
	}
	switch {
	case len(a.Channel) == 0:
		return nil, fmt.Errorf("%w: no channel", ErrInvalid)
	case len(a.Secret) > MaxAlertSecret:
		return nil, fmt.Errorf("%w: secret of %d bytes, at most %d", ErrInvalid, len(a.Secret), MaxAlertSecret)
	case len(a.CA) > MaxAlertCA:
		return nil, fmt.Errorf("%w: CA bundle of %d bytes, at most %d", ErrInvalid, len(a.CA), MaxAlertCA)
	}
	return &a, nil
}
