package smart

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kiln-fhir/kiln/store"
)

// Dynamic client registration (RFC 7591), gated by an administrator:
// POST B/auth/register needs an initial access token (RFC 7591 §3,
// "protected registration"), minted by `kiln client token` beside the
// running server and good for one registration. Without one an open
// endpoint would let anybody register an app and put its name on the
// consent page.

// kindRegToken: SHA-256 of an initial access token → nothing; it expires
// with the token and is taken by the registration that uses it.
const kindRegToken = "smart.regtoken"

// CreateRegistrationToken mints an initial access token for one dynamic
// registration, valid for ttl. Only its hash is stored.
func CreateRegistrationToken(ctx context.Context, rs Records, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		return "", time.Time{}, errors.New("an initial access token needs a positive lifetime")
	}
	tok := randomToken(32)
	exp := time.Now().Add(ttl).UTC()
	if err := rs.InsertRecord(ctx, store.Record{Kind: kindRegToken, Key: regTokenKey(tok), Value: []byte{}, Expires: exp}); err != nil {
		return "", time.Time{}, err
	}
	return tok, exp, nil
}

func regTokenKey(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// clientMetadata is the part of RFC 7591 §2 client metadata Kiln reads;
// other fields are ignored, as §2 allows.
type clientMetadata struct {
	Name          string          `json:"client_name"`
	RedirectURIs  []string        `json:"redirect_uris"`
	AuthMethod    string          `json:"token_endpoint_auth_method"`
	GrantTypes    []string        `json:"grant_types"`
	ResponseTypes []string        `json:"response_types"`
	Scope         string          `json:"scope"`
	JWKS          json.RawMessage `json:"jwks"`
	JWKSURL       string          `json:"jwks_uri"`
}

// spec checks the metadata against what Kiln's clients can be and turns
// it into a ClientSpec; the error is the RFC 7591 §3.2.2 error code and
// a description.
func (m clientMetadata) spec() (ClientSpec, string, string) {
	bad := func(desc string) (ClientSpec, string, string) { return ClientSpec{}, "invalid_client_metadata", desc }
	sp := ClientSpec{Name: m.Name, RedirectURIs: m.RedirectURIs, JWKS: m.JWKS, JWKSURL: m.JWKSURL, Scopes: strings.Fields(m.Scope)}
	method := m.AuthMethod
	if method == "" {
		// RFC 7591 §2: the default is client_secret_basic; keys given
		// say private_key_jwt.
		method = authSecret
		if len(m.JWKS) > 0 || m.JWKSURL != "" {
			method = authPrivateJWT
		}
	}
	switch method {
	case authNone:
		sp.Public = true
	case authSecret, "client_secret_post":
		if len(m.JWKS) > 0 || m.JWKSURL != "" {
			return bad("a client authenticating with a secret registers no keys")
		}
	case authPrivateJWT:
		if len(m.JWKS) == 0 && m.JWKSURL == "" {
			return bad("private_key_jwt needs jwks or jwks_uri")
		}
	default:
		return bad("token_endpoint_auth_method must be none, client_secret_basic, client_secret_post or private_key_jwt")
	}
	if len(m.ResponseTypes) > 0 && !slices.Equal(m.ResponseTypes, []string{"code"}) {
		return bad(`response_types may only be ["code"]`)
	}
	allowed := []string{"authorization_code", "refresh_token"}
	if method == authPrivateJWT {
		allowed = append(allowed, "client_credentials")
	}
	for _, g := range m.GrantTypes {
		if !slices.Contains(allowed, g) {
			return bad("grant type " + g + " is not available to a " + method + " client")
		}
	}
	return sp, "", "" // redirect URIs: addClient's checks
}

// register is POST B/auth/register (RFC 7591 §3).
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store") // the answer may hold a secret
	w.Header().Set("Pragma", "no-cache")
	tok := bearerToken(r)
	if tok == "" {
		// RFC 6750 §3.1: no error code without credentials.
		w.Header().Set("WWW-Authenticate", `Bearer realm="kiln"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token",
			"error_description": "registration needs an initial access token (kiln client token)"})
		return
	}
	key := regTokenKey(tok)
	invalid := func() {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kiln", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token",
			"error_description": "the initial access token is unknown, expired or used"})
	}
	if _, err := s.rs.GetRecord(ctx, kindRegToken, key); errors.Is(err, store.ErrNotFound) {
		invalid()
		return
	} else if err != nil {
		s.serverError(w, err)
		return
	}
	var m clientMetadata
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFormBytes)).Decode(&m); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_client_metadata", "error_description": "the body must be a JSON object of client metadata"})
		return
	}
	spec, code, desc := m.spec()
	if code == "" {
		// Checked in full before the token is spent: a rejected request
		// leaves it for a corrected one.
		if _, err := addClient(ctx, nopRecords{}, spec, true); err != nil {
			code, desc = "invalid_client_metadata", err.Error()
			if strings.HasPrefix(desc, "redirect URI") || strings.Contains(desc, "--redirect-uri") {
				code = "invalid_redirect_uri"
			}
		}
	}
	if code != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
		return
	}
	// The token is spent by the one registration that takes it (two
	// racing with one token: one wins, in every process).
	if _, err := s.rs.TakeRecord(ctx, kindRegToken, key); errors.Is(err, store.ErrNotFound) {
		invalid()
		return
	} else if err != nil {
		s.serverError(w, err)
		return
	}
	reg, err := AddClient(ctx, s.rs, spec)
	if err != nil {
		s.serverError(w, err)
		return
	}
	c, err := getClient(ctx, s.rs, reg.ClientID)
	if err != nil {
		s.serverError(w, err)
		return
	}
	s.log.Info("smart: client registered", "client_id", reg.ClientID, "method", reg.AuthMethod)
	// RFC 7591 §3.2.1: the metadata as registered.
	out := map[string]any{
		"client_id":                  reg.ClientID,
		"client_id_issued_at":        c.Created.Unix(),
		"client_name":                reg.Name,
		"token_endpoint_auth_method": reg.AuthMethod,
		"grant_types":                c.GetGrantTypes(),
		"response_types":             []string{"code"},
		"scope":                      reg.Scope,
	}
	if m.AuthMethod == "client_secret_post" {
		out["token_endpoint_auth_method"] = m.AuthMethod // both are accepted
	}
	if len(reg.RedirectURIs) > 0 {
		out["redirect_uris"] = reg.RedirectURIs
	}
	if reg.ClientSecret != "" {
		out["client_secret"] = reg.ClientSecret
		out["client_secret_expires_at"] = 0 // never
	}
	if c.JWKS != nil {
		out["jwks"] = c.JWKS
	}
	if c.JWKSURL != "" {
		out["jwks_uri"] = c.JWKSURL
	}
	writeJSON(w, http.StatusCreated, out)
}
