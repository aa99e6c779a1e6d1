package alerting

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/alert"
	"github.com/coffer-backup/coffer/internal/fleet/api"
)

// Dir is the directory of the channels' files in the server's state
// directory: NAME.secret (an SMTP password or a webhook's key) and
// NAME.ca.pem, each of mode 0600, the directory 0700.
const Dir = "alerts"

// Dispatcher is what Channels needs of the alert dispatcher.
type Dispatcher interface {
	Reload()
	Test(ctx context.Context, name string) error
}

// Channels administers the alert channels (fleet.AlertAdmin): their
// settings in the state database, their secrets in files under Dir.
type Channels struct {
	Dir        string // the state directory's Dir
	Store      alert.Store
	Dispatcher Dispatcher
}

func (c *Channels) secretPath(name string) string { return filepath.Join(c.Dir, name+".secret") }
func (c *Channels) caPath(name string) string     { return filepath.Join(c.Dir, name+".ca.pem") }

// decodeChannel reads the channel of a request: strictly, and without any
// file path, which only the server sets.
func decodeChannel(data []byte) (alert.Channel, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var ch alert.Channel
	if err := dec.Decode(&ch); err != nil {
		return ch, fmt.Errorf("%w: channel: %v", alert.ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ch, fmt.Errorf("%w: channel: data after the object", alert.ErrInvalid)
	}
	e, w := ch.Email, ch.Webhook
	if e != nil && (e.PasswordFile != "" || e.CAFile != "") || w != nil && (w.SecretFile != "" || w.CAFile != "") {
		return ch, fmt.Errorf("%w: channel %s names a file on the server; send the secret and the CA themselves, the server keeps them", alert.ErrInvalid, ch.Name)
	}
	return ch, nil
}

// PutChannel checks req's channel, writes its secret and CA files and
// stores it (replacing the one of its name), then has the dispatcher
// pick it up. A channel that does not validate changes nothing.
func (c *Channels) PutChannel(ctx context.Context, req api.AlertAdd) (api.AlertChannel, error) {
	ch, err := decodeChannel(req.Channel)
	if err != nil {
		return api.AlertChannel{}, err
	}
	wantSecret := ch.Webhook != nil || ch.Email != nil && ch.Email.User != ""
	switch {
	case wantSecret && len(req.Secret) == 0:
		return api.AlertChannel{}, fmt.Errorf("%w: channel %s needs a secret (a webhook's key, or the password of the SMTP user)", alert.ErrInvalid, ch.Name)
	case !wantSecret && len(req.Secret) > 0:
		return api.AlertChannel{}, fmt.Errorf("%w: channel %s takes no secret (an email channel's password goes with a user)", alert.ErrInvalid, ch.Name)
	case len(req.CA) > 0 && ch.Syslog != nil:
		return api.AlertChannel{}, fmt.Errorf("%w: a syslog channel takes no CA", alert.ErrInvalid)
	}
	if err := checkContents(ch, req); err != nil {
		return api.AlertChannel{}, err
	}
	c.setPaths(&ch, len(req.Secret) > 0, len(req.CA) > 0)
	if err := ch.Validate(); err != nil {
		return api.AlertChannel{}, err
	}
	// Checked before a byte is written: a refused replacement leaves the
	// channel it would have replaced and its files as they were.
	if err := c.writeFiles(ch, req); err != nil {
		return api.AlertChannel{}, err
	}
	if err := ch.CheckFiles(); err != nil {
		return api.AlertChannel{}, err
	}
	if err := c.Store.PutAlertChannel(ctx, ch); err != nil {
		return api.AlertChannel{}, err
	}
	c.Dispatcher.Reload()
	return describe(ch, nil), nil
}

// checkContents checks the secret and CA a request sends, as CheckFiles
// will check the files they go to.
func checkContents(ch alert.Channel, req api.AlertAdd) error {
	if ch.Webhook != nil && len(req.Secret) < alert.MinWebhookKey {
		return fmt.Errorf("%w: channel %s: a webhook key of %d bytes; at least %d needed", alert.ErrInvalid, ch.Name, len(req.Secret), alert.MinWebhookKey)
	}
	if len(req.CA) > 0 && !x509.NewCertPool().AppendCertsFromPEM(req.CA) {
		return fmt.Errorf("%w: channel %s: the CA holds no PEM certificate", alert.ErrInvalid, ch.Name)
	}
	return nil
}

func (c *Channels) setPaths(ch *alert.Channel, secret, ca bool) {
	path := func(ok bool, p string) string {
		if ok {
			return p
		}
		return ""
	}
	switch {
	case ch.Email != nil:
		ch.Email.PasswordFile, ch.Email.CAFile = path(secret, c.secretPath(ch.Name)), path(ca, c.caPath(ch.Name))
	case ch.Webhook != nil:
		ch.Webhook.SecretFile, ch.Webhook.CAFile = path(secret, c.secretPath(ch.Name)), path(ca, c.caPath(ch.Name))
	}
}

// writeFiles writes the channel's secret and CA (or removes those it no
// longer has), each through a temporary file renamed into place.
func (c *Channels) writeFiles(ch alert.Channel, req api.AlertAdd) error {
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("alert files: %w", err)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{c.secretPath(ch.Name), req.Secret}, {c.caPath(ch.Name), req.CA}} {
		if len(f.data) == 0 {
			if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("alert files: %w", err)
			}
			continue
		}
		if err := writeFile0600(f.path, f.data); err != nil {
			return err
		}
	}
	return nil
}

func writeFile0600(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("alert files: %w", err)
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		_ = os.Remove(name)
		return fmt.Errorf("alert file %s: %w", filepath.Base(path), err)
	}
	return nil
}

// removeFiles removes a channel's files (those of a removed channel).
func (c *Channels) removeFiles(name string) {
	_ = os.Remove(c.secretPath(name))
	_ = os.Remove(c.caPath(name))
}

// Channels lists the channels with their outbox counts.
func (c *Channels) Channels(ctx context.Context) ([]api.AlertChannel, error) {
	chans, err := c.Store.AlertChannels(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.AlertChannel, 0, len(chans))
	for _, ch := range chans {
		items, err := c.Store.AlertItems(ctx, ch.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, describe(ch, items))
	}
	return out, nil
}

// RemoveChannel removes the channel, its pending items and its files.
func (c *Channels) RemoveChannel(ctx context.Context, name string) error {
	if err := c.Store.RemoveAlertChannel(ctx, name); err != nil {
		return err
	}
	c.removeFiles(name)
	c.Dispatcher.Reload()
	return nil
}

// TestChannel sends the channel a test alert at once.
func (c *Channels) TestChannel(ctx context.Context, name string) error {
	return c.Dispatcher.Test(ctx, name)
}

// describe is what list shows of ch: never a secret, nor a URL's query.
func describe(ch alert.Channel, items []alert.Item) api.AlertChannel {
	d := api.AlertChannel{Name: ch.Name, Kind: string(ch.Kind), Events: []string{}, Clients: nonNil(ch.Clients), Groups: nonNil(ch.Groups), DigestAt: ch.DigestAt}
	for _, k := range ch.Events {
		d.Events = append(d.Events, string(k))
	}
	switch {
	case ch.Email != nil:
		e := ch.Email
		d.Target, d.Security, d.User, d.From, d.To = e.SMTP, e.Security, e.User, e.From, e.To
		d.HasSecret, d.HasCA = e.PasswordFile != "", e.CAFile != ""
	case ch.Webhook != nil:
		d.Target = ch.Webhook.URL
		if u, err := url.Parse(ch.Webhook.URL); err == nil {
			u.RawQuery, u.ForceQuery = "", false
			d.Target = u.String()
		}
		d.HasSecret, d.HasCA = ch.Webhook.SecretFile != "", ch.Webhook.CAFile != ""
	case ch.Syslog != nil:
		s := ch.Syslog
		d.Target = s.Address
		if s.Network == "udp" || s.Network == "tcp" {
			d.Target = s.Network + "://" + s.Address
		} else if d.Target == "" {
			d.Target = "unix:///dev/log"
		} else {
			d.Target = "unix://" + d.Target
		}
	}
	var last alert.Item
	for _, it := range items {
		switch it.State {
		case alert.Pending:
			d.Pending++
		case alert.Dead:
			d.Dead++
		}
		if it.LastError != "" { // items come oldest first
			last = it
		}
	}
	d.LastError = last.LastError
	return d
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
