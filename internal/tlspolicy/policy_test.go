package tlspolicy

import (
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	p := Default()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.MinVersion != tls.VersionTLS12 || len(p.CipherSuites) != 6 || !slices.Contains(p.Curves, tls.X25519MLKEM768) {
		t.Fatalf("default policy %+v", p)
	}
	for _, id := range p.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20")) {
			t.Errorf("default suite %s is not ECDHE+AEAD", name)
		}
	}
	// The policy's configs carry it.
	cfg := p.ServerConfig(tls.Certificate{}, nil, nil)
	if cfg.MinVersion != tls.VersionTLS12 || cfg.MaxVersion != tls.VersionTLS13 || !slices.Equal(cfg.CipherSuites, p.CipherSuites) ||
		!slices.Equal(cfg.CurvePreferences, p.Curves) || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Fatalf("server config does not carry the policy: %+v", cfg)
	}
	cc := p.ClientConfig(tls.Certificate{}, nil, "h")
	if cc.RootCAs == nil || cc.InsecureSkipVerify || cc.Renegotiation != tls.RenegotiateNever || cc.MinVersion != tls.VersionTLS12 {
		t.Fatal("client config must pin a (possibly empty) root pool and the policy")
	}
	// Mutating a config does not change the policy.
	cfg.CipherSuites[0] = 0
	if Default().CipherSuites[0] == 0 || p.CipherSuites[0] == 0 {
		t.Fatal("config shares the policy's slices")
	}
}

func TestParseConfig(t *testing.T) {
	ok := map[string]func(Policy) bool{
		``:                      func(p Policy) bool { return slices.Equal(p.CipherSuites, Default().CipherSuites) },
		`{}`:                    func(p Policy) bool { return p.MinVersion == tls.VersionTLS12 },
		`{"min_version":"1.2"}`: func(p Policy) bool { return p.MinVersion == tls.VersionTLS12 },
		`{"min_version":"1.3"}`: func(p Policy) bool { return p.MinVersion == tls.VersionTLS13 },
		`{"cipher_suites":["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]}`: func(p Policy) bool {
			return slices.Equal(p.CipherSuites, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384})
		},
		`{"curves":["X25519MLKEM768","X25519"]}`: func(p Policy) bool {
			return slices.Equal(p.Curves, []tls.CurveID{tls.X25519MLKEM768, tls.X25519})
		},
		`{"min_version":"1.3","curves":["X25519MLKEM768"]}`: func(p Policy) bool { return len(p.Curves) == 1 },
	}
	for in, check := range ok {
		p, err := ParseConfig([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if !check(p) {
			t.Errorf("%s: policy %+v", in, p)
		}
	}
	looser := map[string]string{
		`{"min_version":"1.0"}`: "1.0",
		`{"min_version":"1.1"}`: "1.1",
		`{"cipher_suites":["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]}`:                                        "CBC",
		`{"cipher_suites":["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256","TLS_RSA_WITH_AES_128_GCM_SHA256"]}`: "RSA key exchange",
		`{"cipher_suites":["TLS_RSA_WITH_3DES_EDE_CBC_SHA"]}`:                                             "3DES",
		`{"cipher_suites":["TLS_ECDHE_RSA_WITH_RC4_128_SHA"]}`:                                            "RC4",
		`{"cipher_suites":["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"]}`:                                   "CBC",
		`{"cipher_suites":["TLS_AES_128_GCM_SHA256"]}`:                                                    "TLS 1.3",
		`{"curves":["X25519","P-521"]}`:                                                                   "P-521",
	}
	for in, want := range looser {
		_, err := ParseConfig([]byte(in))
		if !errors.Is(err, ErrLooserThanPolicy) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrLooserThanPolicy mentioning %q", in, err, want)
		}
	}
	invalid := []string{
		`{"min_version":"1.4"}`, `{"min_version":1.2}`, `{"cipher_suites":["TLS_FOO"]}`, `{"curves":["secp192r1"]}`,
		`{"cipher_suites":[]}`, `{"curves":[]}`, `{"curves":["X25519MLKEM768"]}`,
		`{"min_version":"1.3","cipher_suites":["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]}`,
		`{"cipher_suites":["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256","TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]}`,
		`{"ciphers":[]}`, `{} {}`, `{}x`, `null`, `[]`, `"1.3"`, `{`,
	}
	for _, in := range invalid {
		if _, err := ParseConfig([]byte(in)); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", in, err)
		}
	}
	if err := (Policy{MinVersion: tls.VersionTLS11, CipherSuites: Default().CipherSuites, Curves: Default().Curves}).Validate(); !errors.Is(err, ErrLooserThanPolicy) {
		t.Errorf("hand-made TLS 1.1 policy validates: %v", err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"min_version":"1.3"}`))
	f.Add([]byte(`{"cipher_suites":["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],"curves":["X25519"]}`))
	f.Add([]byte(`{"min_version":"1.0","cipher_suites":["TLS_RSA_WITH_AES_128_CBC_SHA"]}`))
	f.Add([]byte(`{"curves":["P-256","P-384","SecP256r1MLKEM768"]}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseConfig(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) && !errors.Is(err, ErrLooserThanPolicy) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		// Whatever parses is at least as strict as the default.
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted a policy that does not validate: %v", err)
		}
		d := Default()
		if p.MinVersion < d.MinVersion {
			t.Fatalf("accepted min version %x", p.MinVersion)
		}
		for _, s := range p.CipherSuites {
			if !slices.Contains(d.CipherSuites, s) {
				t.Fatalf("accepted suite %s", tls.CipherSuiteName(s))
			}
		}
		for _, c := range p.Curves {
			if !slices.Contains(d.Curves, c) {
				t.Fatalf("accepted group %s", c)
			}
		}
	})
}
