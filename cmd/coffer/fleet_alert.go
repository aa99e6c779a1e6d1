package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/coffer-backup/coffer/internal/alert"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/termesc"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// alertCommon are the flags every alert add takes.
type alertCommon struct {
	name, digest, caFile    string
	events, clients, groups []string
}

func (a *alertCommon) flags(f *pflag.FlagSet, withCA bool) {
	f.StringVar(&a.name, "name", "", "the channel's name (1-64 of a-z, 0-9, '-', '_')")
	f.StringSliceVar(&a.events, "events", nil, "only these events (default: all): "+kindList())
	f.StringSliceVar(&a.clients, "clients", nil, "only events of these hosts (default: every host and the server's own events)")
	f.StringSliceVar(&a.groups, "groups", nil, "only events of hosts in these groups")
	f.StringVar(&a.digest, "digest", "", "send one digest a day at HH:MM UTC instead of a message per event")
	if withCA {
		f.StringVar(&a.caFile, "ca-file", "", "PEM CAs to trust instead of the system's (sent to the server, which keeps it)")
	}
}

func kindList() string {
	var s []string
	for _, k := range alert.Kinds() {
		if k != alert.Test {
			s = append(s, string(k))
		}
	}
	return strings.Join(s, ", ")
}

// channel is the channel the flags describe, and the CA file's contents.
func (a *alertCommon) channel(kind alert.ChannelKind) (alert.Channel, []byte, error) {
	if a.name == "" {
		return alert.Channel{}, nil, usageErrorf("--name is required")
	}
	c := alert.Channel{Name: a.name, Kind: kind, Clients: a.clients, Groups: a.groups, DigestAt: a.digest}
	for _, e := range a.events {
		k, err := alert.ParseKind(e)
		if err != nil {
			return alert.Channel{}, nil, usageErrorf("--events: %v", err)
		}
		c.Events = append(c.Events, k)
	}
	var ca []byte
	if a.caFile != "" {
		b, err := os.ReadFile(a.caFile) // #nosec G304 -- the administrator's own file
		if err != nil {
			return alert.Channel{}, nil, usageErrorf("--ca-file: %v", err)
		}
		if len(b) > api.MaxAlertCA {
			return alert.Channel{}, nil, usageErrorf("--ca-file %s is over %d bytes", a.caFile, api.MaxAlertCA)
		}
		ca = b
	}
	return c, ca, nil
}

// put sends the channel with its secret and CA, and prints what the
// server stored.
func putAlert(cmd *cobra.Command, g *globalOptions, o *fleetOptions, c alert.Channel, secret, ca []byte) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	var out fleetAlertJSON
	if err := o.do(cmd.Context(), http.MethodPost, api.AlertsPath, api.AlertAdd{Channel: raw, Secret: secret, CA: ca}, &out); err != nil {
		return err
	}
	if g.json {
		return printJSON(cmd.OutOrStdout(), out)
	}
	g.printf(cmd.OutOrStdout(), "alert channel %q (%s to %s) added\n", out.Name, out.Kind, out.Target)
	return nil
}

func readAlertSecret(flag, path string, minLen int) ([]byte, error) {
	b, err := alert.ReadSecretFile(path, minLen)
	if err != nil {
		if errors.Is(err, alert.ErrInsecure) || errors.Is(err, alert.ErrInvalid) || errors.Is(err, os.ErrNotExist) {
			return nil, usageErrorf("%s: %v", flag, err)
		}
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return b, nil
}

func newFleetAlertCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "alert", Short: "Alert channels: mail, webhook, syslog (admins only)"}
	add := &cobra.Command{Use: "add", Short: "Add an alert channel, or replace the one of its name"}
	add.AddCommand(newAlertAddEmail(g, o), newAlertAddWebhook(g, o), newAlertAddSyslog(g, o))
	cmd.AddCommand(add, newAlertList(g, o),
		&cobra.Command{
			Use: "remove NAME", Short: "Remove a channel and the alerts waiting for it", Args: usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := o.do(cmd.Context(), http.MethodDelete, api.AlertsPath+"/"+args[0], nil, nil); err != nil {
					return err
				}
				g.printf(cmd.OutOrStdout(), "alert channel %q removed\n", args[0])
				return nil
			},
		},
		&cobra.Command{
			Use: "test NAME", Short: "Send a channel a test alert now and report how it went", Args: usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				var res fleetAlertTestJSON
				if err := o.do(cmd.Context(), http.MethodPost, api.AlertsPath+"/"+args[0]+"/test", struct{}{}, &res); err != nil {
					return err
				}
				if g.json {
					if err := printJSON(cmd.OutOrStdout(), res); err != nil {
						return err
					}
				}
				if !res.Delivered {
					return fmt.Errorf("alert channel %q: the test alert was not delivered: %s", res.Name, termesc.Name(res.Error))
				}
				if !g.json {
					g.printf(cmd.OutOrStdout(), "alert channel %q: test alert delivered\n", res.Name)
				}
				return nil
			},
		},
	)
	return cmd
}

func newAlertAddEmail(g *globalOptions, o *fleetOptions) *cobra.Command {
	var a alertCommon
	var e alert.EmailConfig
	var starttls, implicit bool
	var passwordFile string
	cmd := &cobra.Command{
		Use:   "email --name N --smtp HOST:PORT [--starttls|--tls] [--user U --password-file F] --from A --to B...",
		Short: "Mail alerts through an SMTP server",
		Long: `Mail alerts through an SMTP server. Without --starttls or --tls the server
upgrades with STARTTLS whenever the SMTP server offers it; --starttls
requires it, --tls speaks TLS from the first byte. A password is never
sent in the clear. The password file (mode 0600) is read here and sent
over the mutual-TLS API; the server keeps it in a file of mode 0600.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ca, err := a.channel(alert.Email)
			if err != nil {
				return err
			}
			switch {
			case starttls && implicit:
				return usageErrorf("--starttls and --tls exclude each other")
			case starttls:
				e.Security = alert.SMTPStartTLS
			case implicit:
				e.Security = alert.SMTPImplicitTLS
			}
			if (e.User == "") != (passwordFile == "") {
				return usageErrorf("--user and --password-file go together")
			}
			var secret []byte
			if passwordFile != "" {
				if secret, err = readAlertSecret("--password-file", passwordFile, 1); err != nil {
					return err
				}
			}
			c.Email = &e
			return putAlert(cmd, g, o, c, secret, ca)
		},
	}
	f := cmd.Flags()
	a.flags(f, true)
	f.StringVar(&e.SMTP, "smtp", "", "the SMTP server, HOST:PORT")
	f.BoolVar(&starttls, "starttls", false, "require STARTTLS")
	f.BoolVar(&implicit, "tls", false, "TLS from the first byte (port 465)")
	f.StringVar(&e.User, "user", "", "SMTP user")
	f.StringVar(&passwordFile, "password-file", "", "file holding the SMTP password (mode 0600)")
	f.StringVar(&e.From, "from", "", "sender address")
	f.StringSliceVar(&e.To, "to", nil, "recipient addresses")
	return cmd
}

func newAlertAddWebhook(g *globalOptions, o *fleetOptions) *cobra.Command {
	var a alertCommon
	var w alert.WebhookConfig
	var secretFile string
	cmd := &cobra.Command{
		Use:   "webhook --name N --url U --secret-file F",
		Short: "POST alerts as JSON signed with HMAC-SHA-256",
		Long: `POST alerts as JSON to a URL, signed with HMAC-SHA-256 keyed with the secret
file's contents (at least 16 bytes, mode 0600) in X-Coffer-Signature. The
secret is read here and sent over the mutual-TLS API; the server keeps it
in a file of mode 0600.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ca, err := a.channel(alert.Webhook)
			if err != nil {
				return err
			}
			if secretFile == "" {
				return usageErrorf("--secret-file is required")
			}
			secret, err := readAlertSecret("--secret-file", secretFile, alert.MinWebhookKey)
			if err != nil {
				return err
			}
			c.Webhook = &w
			return putAlert(cmd, g, o, c, secret, ca)
		},
	}
	f := cmd.Flags()
	a.flags(f, true)
	f.StringVar(&w.URL, "url", "", "the receiver's URL, https or http")
	f.StringVar(&secretFile, "secret-file", "", "file holding the HMAC key (mode 0600, at least 16 bytes)")
	return cmd
}

func newAlertAddSyslog(g *globalOptions, o *fleetOptions) *cobra.Command {
	var a alertCommon
	var s alert.SyslogConfig
	var address string
	cmd := &cobra.Command{
		Use:   "syslog --name N [--address udp://HOST:PORT|tcp://HOST:PORT|unix:///dev/log]",
		Short: "Send alerts as RFC 5424 syslog messages",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := a.channel(alert.Syslog)
			if err != nil {
				return err
			}
			if s.Network, s.Address, err = alert.ParseSyslogAddress(address); err != nil {
				return usageErrorf("--address: %v", err)
			}
			c.Syslog = &s
			return putAlert(cmd, g, o, c, nil, nil)
		},
	}
	f := cmd.Flags()
	a.flags(f, false)
	f.StringVar(&address, "address", "", "udp://HOST:PORT, tcp://HOST:PORT, unix:///PATH (stream) or unixgram:///PATH (default: the datagram socket /dev/log)")
	f.StringVar(&s.Facility, "facility", "", "daemon (default), user, auth, authpriv, local0..local7")
	f.StringVar(&s.AppName, "app-name", "", "APP-NAME of the messages (default coffer)")
	return cmd
}

func newAlertList(g *globalOptions, o *fleetOptions) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the alert channels (never their secrets)", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var chans []fleetAlertJSON
			if err := o.do(cmd.Context(), http.MethodGet, api.AlertsPath, nil, &chans); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), chans)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tTARGET\tEVENTS\tPENDING\tDEAD\tLAST ERROR")
			for _, c := range chans {
				ev := strings.Join(c.Events, ",")
				if ev == "" {
					ev = "all"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", c.Name, c.Kind, termesc.Name(c.Target), ev, c.Pending, c.Dead, termesc.Name(c.LastError))
			}
			return tw.Flush()
		},
	}
}
