package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/go-jose/go-jose/v3/jwt"
	"github.com/ory/fosite"
)

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Assertions may be dated at most this far ahead
// (client-confidential-asymmetric.html: exp "no more than five minutes in
// the future"); skew forgives clocks a little apart, since Inferno sets
// exp to exactly now + 300 s.
const (
	maxAssertionLife = 5 * time.Minute
	clockSkew        = 30 * time.Second
)

// authenticateClient is fosite's ClientAuthenticationStrategy, used by
// the token, revocation and introspection endpoints:
//
//   - private_key_jwt (client-confidential-asymmetric.html, RFC 7523 §3);
//   - client_secret_basic and client_secret_post, both accepted for a
//     symmetric client (client-confidential-symmetric.html);
//   - none: a public client names itself with client_id.
//
// Every failure is invalid_client (RFC 6749 §5.2), except a malformed
// request (unknown client_assertion_type), which is invalid_request.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if at := form.Get("client_assertion_type"); at != "" || form.Get("client_assertion") != "" {
		if at != assertionType {
			return nil, fosite.ErrInvalidRequest.WithHintf("client_assertion_type must be %s.", assertionType)
		}
		return s.verifyAssertion(ctx, form.Get("client_assertion"), form.Get("client_id"))
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, fosite.ErrInvalidClient.WithHint("The Basic credentials are not form-encoded.")
		}
		if form.Get("client_secret") != "" {
			return nil, fosite.ErrInvalidRequest.WithHint("Use one client authentication method, not two.")
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return nil, fosite.ErrInvalidClient.WithHint("The client is not identified: send client_id, Basic credentials or a client assertion.")
	}
	c, err := s.client(ctx, id)
	if err != nil {
		return nil, err
	}
	switch c.AuthMethod {
	case authNone:
		if secret != "" {
			return nil, fosite.ErrInvalidClient.WithHint("This client is public and has no secret.")
		}
		return c, nil
	case authSecret:
		if !c.secretMatches(secret) {
			return nil, fosite.ErrInvalidClient.WithHint("The client secret is wrong.")
		}
		return c, nil
	}
	return nil, fosite.ErrInvalidClient.WithHint("This client must authenticate with a signed client assertion (private_key_jwt).")
}

// client loads a client for authentication: unknown is invalid_client.
func (s *Server) client(ctx context.Context, id string) (*Client, error) {
	c, err := getClient(ctx, s.rs, id)
	if err != nil {
		if isNotFound(err) {
			return nil, fosite.ErrInvalidClient.WithHint("Unknown client.")
		}
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	s.decorate(c)
	return c, nil
}

// decorate gives a loaded client what comes from the server's
// configuration rather than its registration.
func (s *Server) decorate(c *Client) {
	c.audience = []string{s.cfg.BaseURL}
	c.systemLife = s.cfg.SystemTokenLifespan
}

// verifyAssertion checks a client assertion per RFC 7523 §3 and SMART's
// asymmetric profile: alg RS384 or ES384 (never none or HMAC), a kid
// naming exactly one registered key of a matching type, a jku (if any)
// equal to the registered JWKS URL, iss = sub = the client id, aud = this
// token URL, exp present and at most five minutes ahead, and a jti never
// seen before (remembered until the assertion expires).
func (s *Server) verifyAssertion(ctx context.Context, assertion, formID string) (fosite.Client, error) {
	bad := func(hint string, args ...any) error { return fosite.ErrInvalidClient.WithHintf(hint, args...) }
	tok, err := jwt.ParseSigned(assertion)
	if err != nil || len(tok.Headers) != 1 {
		return nil, bad("The client assertion is not a signed JWT.")
	}
	h := tok.Headers[0]
	var wantKty string
	switch jose.SignatureAlgorithm(h.Algorithm) {
	case jose.RS384:
		wantKty = "RSA"
	case jose.ES384:
		wantKty = "EC"
	default:
		return nil, bad("The client assertion's alg %q is not supported: use RS384 or ES384.", h.Algorithm)
	}
	if h.KeyID == "" {
		return nil, bad("The client assertion's header has no kid.")
	}
	// Read iss without trusting it, to find the client's keys.
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, bad("The client assertion's claims are not readable.")
	}
	c, err := s.client(ctx, unverified.Issuer)
	if err != nil {
		return nil, err
	}
	if c.AuthMethod != authPrivateJWT {
		return nil, bad("This client is not registered for private_key_jwt.")
	}
	if formID != "" && formID != c.ID {
		return nil, bad("client_id differs from the assertion's iss.")
	}
	set := c.JWKS
	if jku, _ := h.ExtraHeaders["jku"].(string); jku != "" && jku != c.JWKSURL {
		return nil, bad("The client assertion's jku is not the registered JWKS URL.")
	}
	if c.JWKSURL != "" {
		if set, err = s.jwks.get(ctx, c.JWKSURL); err != nil {
			s.log.Warn("client JWKS fetch failed", "client_id", c.ID, "err", err)
			return nil, bad("The client's JWKS could not be fetched.")
		}
	}
	if set == nil {
		return nil, bad("The client has no keys.")
	}
	var cands []jose.JSONWebKey
	for _, k := range set.Key(h.KeyID) {
		if ktyOf(k) == wantKty && (k.Use == "" || k.Use == "sig") {
			cands = append(cands, k)
		}
	}
	if len(cands) != 1 {
		return nil, bad("No single registered %s key has kid %q.", wantKty, h.KeyID)
	}
	var claims jwt.Claims
	if err := tok.Claims(cands[0].Public().Key, &claims); err != nil {
		return nil, bad("The client assertion's signature does not verify.")
	}
	now := s.cfg.Now()
	switch {
	case claims.Issuer != c.ID || claims.Subject != c.ID:
		return nil, bad("The client assertion's iss and sub must both be the client id.")
	case !slices.Contains([]string(claims.Audience), s.tokenURL):
		return nil, bad("The client assertion's aud must be the token URL %s.", s.tokenURL)
	case claims.Expiry == nil:
		return nil, bad("The client assertion has no exp.")
	case claims.Expiry.Time().Before(now.Add(-clockSkew)):
		return nil, bad("The client assertion has expired.")
	case claims.Expiry.Time().After(now.Add(maxAssertionLife + clockSkew)):
		return nil, bad("The client assertion's exp is more than five minutes ahead.")
	case claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(clockSkew)):
		return nil, bad("The client assertion is not valid yet.")
	case claims.ID == "":
		return nil, bad("The client assertion has no jti.")
	}
	if err := s.storage.insertJTI(ctx, c.ID+"|"+claims.ID, claims.Expiry.Time().Add(clockSkew)); err != nil {
		if errors.Is(err, fosite.ErrJTIKnown) {
			return nil, bad("The client assertion's jti was already used.")
		}
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	return c, nil
}

func ktyOf(k jose.JSONWebKey) string {
	switch k.Public().Key.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC"
	}
	return ""
}

// jwksCache fetches clients' JWKS URLs (client-confidential-asymmetric.html
// #signature-verification): with Accept: application/json, kept no longer
// than the response's Cache-Control max-age allows (and at most an hour),
// not at all for no-store or no-cache.
type jwksCache struct {
	client *http.Client
	mu     sync.Mutex
	byURL  map[string]cachedJWKS
}

type cachedJWKS struct {
	set   *jose.JSONWebKeySet
	until time.Time
}

func (j *jwksCache) get(ctx context.Context, u string) (*jose.JSONWebKeySet, error) {
	j.mu.Lock()
	c, ok := j.byURL[u]
	j.mu.Unlock()
	if ok && time.Now().Before(c.until) {
		return c.set, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	var ttl time.Duration
	for _, d := range strings.Split(resp.Header.Get("Cache-Control"), ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		if d == "no-store" || d == "no-cache" {
			ttl = 0
			break
		}
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				ttl = min(time.Duration(n)*time.Second, time.Hour)
			}
		}
	}
	if ttl > 0 {
		j.mu.Lock()
		j.byURL[u] = cachedJWKS{set: &set, until: time.Now().Add(ttl)}
		j.mu.Unlock()
	}
	return &set, nil
}
