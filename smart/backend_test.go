package smart

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"
	"golang.org/x/oauth2/clientcredentials"
)

// service is a Backend Services client with a fresh key pair.
type service struct {
	id   string
	key  crypto.Signer
	alg  jose.SignatureAlgorithm
	kid  string
	jwks jose.JSONWebKeySet // public
}

func newService(t *testing.T, alg jose.SignatureAlgorithm) *service {
	t.Helper()
	s := &service{alg: alg, kid: "k-" + randomToken(6)}
	var err error
	if alg == jose.ES384 {
		s.key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	} else {
		s.key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.jwks = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: s.key.Public(), KeyID: s.kid, Algorithm: string(alg), Use: "sig"}}}
	return s
}

// assertion signs claims (defaults: iss = sub = client id, aud = the
// token URL, exp = now + 5 min exactly as Inferno sends, a fresh jti).
func (s *service) assertion(t *testing.T, tokenURL string, change func(*jwt.Claims, map[jose.HeaderKey]any)) string {
	t.Helper()
	now := time.Now()
	c := jwt.Claims{Issuer: s.id, Subject: s.id, Audience: jwt.Audience{tokenURL},
		Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), ID: randomToken(12)}
	hdr := map[jose.HeaderKey]any{"kid": s.kid, "typ": "JWT"}
	if change != nil {
		change(&c, hdr)
	}
	opts := &jose.SignerOptions{ExtraHeaders: hdr}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(sig).Claims(c).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (e *env) ccConfig(s *service, assertion string, scopes ...string) *clientcredentials.Config {
	return &clientcredentials.Config{TokenURL: e.base + "/auth/token", Scopes: scopes,
		EndpointParams: url.Values{"client_assertion_type": {assertionType}, "client_assertion": {assertion}}}
}

func TestBackendServices(t *testing.T) {
	e := newEnv(t, nil)
	rs := newService(t, jose.RS384)
	inline, _ := json.Marshal(rs.jwks)
	rs.id = e.client(ClientSpec{Name: "Inline RS384", JWKS: inline, Scopes: []string{"system/*.rs"}}).ClientID

	// An ES384 service whose keys are published at a URL (the profile's
	// preferred registration), counting fetches.
	es := newService(t, jose.ES384)
	var fetches atomic.Int32
	keysrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.Header.Get("Accept") != "application/json" {
			t.Errorf("JWKS fetch Accept = %q", r.Header.Get("Accept"))
		}
		w.Header().Set("Cache-Control", "max-age=60")
		json.NewEncoder(w).Encode(es.jwks)
	}))
	defer keysrv.Close()
	es.id = e.client(ClientSpec{Name: "URL ES384", JWKSURL: keysrv.URL + "/jwks.json", Scopes: []string{"system/Patient.rs", "system/Observation.rs"}}).ClientID

	for _, s := range []*service{rs, es} {
		t.Run(string(s.alg), func(t *testing.T) {
			scope := "system/Patient.rs"
			cc := e.ccConfig(s, s.assertion(t, e.base+"/auth/token", nil), scope)
			tok, err := cc.Token(e.ctx())
			if err != nil {
				t.Fatal(err)
			}
			// backend-services.html: short-lived, no refresh token.
			ei, _ := tok.Extra("expires_in").(float64)
			if ei <= 0 || ei > 300 || tok.RefreshToken != "" || tok.Extra("scope") != scope || !strings.EqualFold(tok.TokenType, "bearer") {
				t.Errorf("expires_in %v refresh %q scope %v type %q", tok.Extra("expires_in"), tok.RefreshToken, tok.Extra("scope"), tok.TokenType)
			}
			g, status := e.whoami(tok.AccessToken)
			if status != 200 || g.ClientID != s.id || g.Patient != "" || len(g.Scopes) != 1 || g.Scopes[0].Context != "system" {
				t.Errorf("whoami: %d %+v", status, g)
			}
		})
	}
	cc := e.ccConfig(es, es.assertion(t, e.base+"/auth/token", nil), "system/Observation.rs")
	if _, err := cc.Token(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("JWKS URL fetched %d times, want 1 (cached per max-age)", n)
	}

	tokenURL := e.base + "/auth/token"
	replayed := rs.assertion(t, tokenURL, nil)
	if _, err := e.ccConfig(rs, replayed, "system/Patient.rs").Token(e.ctx()); err != nil {
		t.Fatal(err)
	}
	otherKey := newService(t, jose.RS384)
	otherKey.id, otherKey.kid = rs.id, rs.kid
	hs := func() string {
		// An HMAC "signature" keyed with the public modulus: the classic
		// algorithm-confusion attack.
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"` + rs.kid + `","typ":"JWT"}`))
		p := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"iss":%q,"sub":%q,"aud":%q,"exp":%d,"jti":%q}`, rs.id, rs.id, tokenURL, time.Now().Add(time.Minute).Unix(), randomToken(8)))
		m := hmac.New(sha256.New, rs.key.Public().(*rsa.PublicKey).N.Bytes())
		m.Write([]byte(h + "." + p))
		return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	none := func() string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"` + rs.kid + `","typ":"JWT"}`))
		p := base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"iss":%q,"sub":%q,"aud":%q,"exp":%d,"jti":%q}`, rs.id, rs.id, tokenURL, time.Now().Add(time.Minute).Unix(), randomToken(8)))
		return h + "." + p + "."
	}
	tampered := func() string {
		a := rs.assertion(t, tokenURL, nil)
		parts := strings.Split(a, ".")
		var c map[string]any
		b, _ := base64.RawURLEncoding.DecodeString(parts[1])
		json.Unmarshal(b, &c)
		c["sub"] = es.id
		b, _ = json.Marshal(c)
		parts[1] = base64.RawURLEncoding.EncodeToString(b)
		return strings.Join(parts, ".")
	}
	for _, tc := range []struct {
		name      string
		assertion func() string
		form      url.Values // overrides
		status    []int
		errCode   string
	}{
		{"replayed jti", func() string { return replayed }, nil, []int{400, 401}, "invalid_client"},
		{"tampered claims", tampered, nil, []int{400, 401}, "invalid_client"},
		{"signed by another key", func() string { return otherKey.assertion(t, tokenURL, nil) }, nil, []int{400, 401}, "invalid_client"},
		{"alg none", none, nil, []int{400, 401}, "invalid_client"},
		{"alg HS256", hs, nil, []int{400, 401}, "invalid_client"},
		{"expired", func() string {
			return rs.assertion(t, tokenURL, func(c *jwt.Claims, _ map[jose.HeaderKey]any) {
				c.Expiry = jwt.NewNumericDate(time.Now().Add(-2 * time.Minute))
			})
		}, nil, []int{400, 401}, "invalid_client"},
		{"exp more than 5 minutes ahead", func() string {
			return rs.assertion(t, tokenURL, func(c *jwt.Claims, _ map[jose.HeaderKey]any) {
				c.Expiry = jwt.NewNumericDate(time.Now().Add(10 * time.Minute))
			})
		}, nil, []int{400, 401}, "invalid_client"},
		{"no exp", func() string {
			return rs.assertion(t, tokenURL, func(c *jwt.Claims, _ map[jose.HeaderKey]any) { c.Expiry = nil })
		}, nil, []int{400, 401}, "invalid_client"},
		{"aud is the FHIR base", func() string {
			return rs.assertion(t, tokenURL, func(c *jwt.Claims, _ map[jose.HeaderKey]any) { c.Audience = jwt.Audience{e.base} })
		}, nil, []int{400, 401}, "invalid_client"},
		{"iss not a client", func() string {
			return rs.assertion(t, tokenURL, func(c *jwt.Claims, _ map[jose.HeaderKey]any) {
				c.Issuer, c.Subject = "not_a_valid_iss", "not_a_valid_iss"
			})
		}, nil, []int{400, 401}, "invalid_client"},
		{"sub differs from iss", func() string {
			return rs.assertion(t, tokenURL, func(c *jwt.Claims, _ map[jose.HeaderKey]any) { c.Subject = es.id })
		}, nil, []int{400, 401}, "invalid_client"},
		{"no jti", func() string {
			return rs.assertion(t, tokenURL, func(c *jwt.Claims, _ map[jose.HeaderKey]any) { c.ID = "" })
		}, nil, []int{400, 401}, "invalid_client"},
		{"unknown kid", func() string {
			return rs.assertion(t, tokenURL, func(_ *jwt.Claims, h map[jose.HeaderKey]any) { h["kid"] = "nope" })
		}, nil, []int{400, 401}, "invalid_client"},
		{"jku not the registered URL", func() string {
			return es.assertion(t, tokenURL, func(_ *jwt.Claims, h map[jose.HeaderKey]any) { h["jku"] = "https://evil.example/jwks" })
		}, nil, []int{400, 401}, "invalid_client"},
		{"bad grant_type", func() string { return rs.assertion(t, tokenURL, nil) },
			url.Values{"grant_type": {"not_a_grant_type"}}, []int{400}, ""},
		{"bad client_assertion_type", func() string { return rs.assertion(t, tokenURL, nil) },
			url.Values{"client_assertion_type": {"not_an_assertion_type"}}, []int{400}, "invalid_request"},
		{"user scope", func() string { return rs.assertion(t, tokenURL, nil) },
			url.Values{"scope": {"user/*.rs"}}, []int{400}, "invalid_scope"},
		{"scope beyond registration", func() string { return rs.assertion(t, tokenURL, nil) },
			url.Values{"scope": {"system/*.cruds"}}, []int{400}, "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Patient.rs"},
				"client_assertion_type": {assertionType}, "client_assertion": {tc.assertion()}}
			for k, v := range tc.form {
				form[k] = v
			}
			status, _, body := e.postForm("/auth/token", form, "", "")
			if !contains(tc.status, status) || (tc.errCode != "" && body["error"] != tc.errCode) || body["access_token"] != nil {
				t.Errorf("got %d %v, want %v %s", status, body, tc.status, tc.errCode)
			}
		})
	}

	t.Run("symmetric client may not use client_credentials", func(t *testing.T) {
		sym := e.client(ClientSpec{})
		status, _, body := e.postForm("/auth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"}}, sym.ClientID, sym.ClientSecret)
		if status/100 != 4 || body["access_token"] != nil {
			t.Errorf("got %d %v", status, body)
		}
	})
}
