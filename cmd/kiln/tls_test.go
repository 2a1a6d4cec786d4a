package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a fresh self-signed certificate for localhost and
// 127.0.0.1 to dir and returns the files and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLS: with KILN_TLS_CERT/KILN_TLS_KEY the server speaks HTTPS
// only, and only TLS 1.2 or later (issue 5, "Transport"; RFC 8996): a
// client capped at TLS 1.1 fails the handshake, 1.2 and 1.3 clients are
// served, and the SMART endpoints it advertises are https.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	k := spawn(t, []string{"KILN_TLS_CERT=" + certFile, "KILN_TLS_KEY=" + keyFile},
		"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--log-format", "json")
	rec := k.waitLog(`"kiln serving"`, msgIs("kiln serving"))
	if rec["tls"] != true {
		t.Fatalf("serving log record says tls=%v, want true: %v", rec["tls"], rec)
	}
	addr, _ := rec["addr"].(string)
	base := "https://" + addr

	get := func(tlsMin, tlsMax uint16, path string) (*http.Response, []byte, error) {
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tlsMin, MaxVersion: tlsMax},
		}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(base + path)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	for _, tc := range []struct {
		name     string
		min, max uint16
		served   bool
	}{
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS10, tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := get(tc.min, tc.max, "/metadata")
			if !tc.served {
				if err == nil {
					t.Fatalf("a client capped at %s was served (%d); want a failed handshake", tc.name, resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("GET /metadata over %s: %v", tc.name, err)
			}
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"CapabilityStatement"`) {
				t.Fatalf("GET /metadata over %s: %d %.200s", tc.name, resp.StatusCode, body)
			}
			if got := resp.TLS.Version; got != tc.max {
				t.Errorf("negotiated %s, want %s", tls.VersionName(got), tls.VersionName(tc.max))
			}
		})
	}

	// The SMART audience and endpoints follow the scheme.
	_, body, err := get(tls.VersionTLS12, 0, "/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(body, &conf); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(conf.TokenEndpoint, "https://") {
		t.Errorf("token_endpoint %q is not https", conf.TokenEndpoint)
	}

	// Plain HTTP on the TLS port is not served.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/metadata")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP on the TLS port answered 200")
		}
	}
}

// TestServeTLSFlagsGoTogether: one of the pair alone, or files that do not
// hold a key pair, stop the server at start rather than serve plain HTTP.
func TestServeTLSFlagsGoTogether(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cert alone", []string{"--tls-cert", certFile}, "go together"},
		{"key alone", []string{"--tls-key", keyFile}, "go together"},
		{"swapped", []string{"--tls-cert", keyFile, "--tls-key", certFile}, "--tls-cert/--tls-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data")}, tc.args...)
			k := spawn(t, nil, args...)
			if err := k.wait(startTimeout); err == nil {
				t.Fatal("kiln serve exited 0")
			}
			if !strings.Contains(k.logs(), tc.want) {
				t.Errorf("output does not say %q:\n%s", tc.want, tail(k.logs(), 10))
			}
		})
	}
}
