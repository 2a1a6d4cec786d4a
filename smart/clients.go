package smart

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"

	"github.com/kiln-fhir/kiln/store"
)

// Client authentication methods (RFC 7591 §2 names).
const (
	authNone       = "none"                // client-public
	authSecret     = "client_secret_basic" // client-confidential-symmetric: Basic or POST
	authPrivateJWT = "private_key_jwt"     // client-confidential-asymmetric, Backend Services
)

// Client is a registered SMART app.
type Client struct {
	ID           string              `json:"client_id"`
	Name         string              `json:"client_name"`
	RedirectURIs []string            `json:"redirect_uris,omitempty"`
	AuthMethod   string              `json:"token_endpoint_auth_method"`
	SecretHash   []byte              `json:"secret_hash,omitempty"` // SHA-256 of a 256-bit random secret
	JWKS         *jose.JSONWebKeySet `json:"jwks,omitempty"`
	JWKSURL      string              `json:"jwks_uri,omitempty"`
	Scopes       []string            `json:"scope"`
	Created      time.Time           `json:"created"`

	audience   []string      // the FHIR base, set on load
	systemLife time.Duration // Backend Services token lifespan
}

// GetEffectiveLifespan implements fosite.ClientWithCustomTokenLifespans:
// Backend Services tokens are short (backend-services.html: expires_in
// "SHOULD NOT exceed 300").
func (c *Client) GetEffectiveLifespan(gt fosite.GrantType, tt fosite.TokenType, fallback time.Duration) time.Duration {
	if gt == fosite.GrantTypeClientCredentials && tt == fosite.AccessToken && c.systemLife > 0 {
		return c.systemLife
	}
	return fallback
}

// The secret is random and long, so a fast hash is enough: a slow KDF
// protects guessable passwords, not 256-bit keys.
func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func (c *Client) secretMatches(secret string) bool {
	return c.AuthMethod == authSecret && len(c.SecretHash) == sha256.Size &&
		subtle.ConstantTimeCompare(c.SecretHash, hashSecret(secret)) == 1
}

// fosite.Client.
func (c *Client) GetID() string                      { return c.ID }
func (c *Client) GetHashedSecret() []byte            { return c.SecretHash }
func (c *Client) GetRedirectURIs() []string          { return c.RedirectURIs }
func (c *Client) GetResponseTypes() fosite.Arguments { return fosite.Arguments{"code"} }
func (c *Client) GetScopes() fosite.Arguments        { return c.Scopes }
func (c *Client) IsPublic() bool                     { return c.AuthMethod == authNone }
func (c *Client) GetAudience() fosite.Arguments      { return c.audience }

// GetGrantTypes: every app may use the authorization code and refresh
// grants (refresh tokens are only issued for offline_access or
// online_access); only asymmetric clients may use client_credentials
// (backend-services.html: the client authenticates with a signed JWT).
func (c *Client) GetGrantTypes() fosite.Arguments {
	g := fosite.Arguments{"authorization_code", "refresh_token"}
	if c.AuthMethod == authPrivateJWT {
		g = append(g, "client_credentials")
	}
	return g
}

// origins are the web origins of the redirect URIs: a browser app served
// from there may call the token endpoint (CORS, app-launch.html).
func (c *Client) origins() []string {
	var out []string
	for _, r := range c.RedirectURIs {
		u, err := url.Parse(r)
		if err == nil && u.Scheme != "" && u.Host != "" {
			out = append(out, u.Scheme+"://"+u.Host)
		}
	}
	return out
}

func getClient(ctx context.Context, rs Records, id string) (*Client, error) {
	rec, err := rs.GetRecord(ctx, kindClient, id)
	if err != nil {
		return nil, err
	}
	var c Client
	if err := json.Unmarshal(rec.Value, &c); err != nil {
		return nil, fmt.Errorf("smart: client %s: %w", id, err)
	}
	return &c, nil
}

var clientIDRE = regexp.MustCompile(`^[A-Za-z0-9\-._~]{1,128}$`)

// ClientSpec is what `kiln client add` registers, and one entry of a
// declarative client file (ApplyClients).
type ClientSpec struct {
	// ID and Secret are normally generated; a declarative setup may fix
	// them (the secret then at least 32 characters).
	ID     string `json:"client_id,omitempty"`
	Secret string `json:"client_secret,omitempty"`

	Name         string          `json:"client_name"`
	RedirectURIs []string        `json:"redirect_uris,omitempty"`
	Public       bool            `json:"public,omitempty"`
	JWKS         json.RawMessage `json:"jwks,omitempty"` // a JWK Set (inline registration)
	JWKSURL      string          `json:"jwks_uri,omitempty"`
	// Scopes the client may be granted; empty means DefaultScopes (or
	// DefaultSystemScopes for a client without redirect URIs).
	Scopes []string `json:"scope,omitempty"`
}

// ApplyClients registers the clients of a declarative file, a JSON array
// of ClientSpec objects, each with its client_id: a client of the same id
// is replaced, so applying the file again converges. Every entry is
// checked before any is stored.
func ApplyClients(ctx context.Context, rs Records, file []byte) ([]Registered, error) {
	var specs []ClientSpec
	dec := json.NewDecoder(bytes.NewReader(file))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&specs); err != nil {
		return nil, fmt.Errorf("client file: %w", err)
	}
	seen := map[string]bool{}
	for i, sp := range specs {
		if sp.ID == "" || seen[sp.ID] {
			return nil, fmt.Errorf("client file: entry %d needs a client_id of its own", i)
		}
		seen[sp.ID] = true
		if _, err := addClient(ctx, nopRecords{}, sp, true); err != nil {
			return nil, fmt.Errorf("client file: %s: %w", sp.ID, err)
		}
	}
	var out []Registered
	for _, sp := range specs {
		reg, err := addClient(ctx, rs, sp, true)
		if err != nil {
			return out, fmt.Errorf("client file: %s: %w", sp.ID, err)
		}
		out = append(out, reg)
	}
	return out, nil
}

// nopRecords accepts every write: ApplyClients validates a whole file
// with it before storing anything.
type nopRecords struct{ Records }

func (nopRecords) PutRecord(context.Context, store.Record) error { return nil }

// DefaultScopes are granted to an app registered without --scope.
var DefaultScopes = []string{"openid", "fhirUser", "launch", "launch/patient", "launch/encounter",
	"offline_access", "online_access", "patient/*.cruds", "user/*.cruds"}

// DefaultSystemScopes are granted to a backend service registered
// without --scope.
var DefaultSystemScopes = []string{"system/*.rs"}

// Registered is the answer of AddClient: the client id and, for a
// symmetric client, the secret, shown once and stored only as a hash.
type Registered struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret,omitempty"`
	Name         string   `json:"client_name"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	RedirectURIs []string `json:"redirect_uris,omitempty"`
	Scope        string   `json:"scope"`
}

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// AddClient registers an app. Redirect URIs must be absolute without a
// fragment (RFC 6749 §3.1.2); they are later matched exactly. An
// asymmetric client gives a JWK Set or its URL, whose keys must each have
// a kid and be RSA or EC public keys (client-confidential-asymmetric.html).
func AddClient(ctx context.Context, rs Records, spec ClientSpec) (Registered, error) {
	return addClient(ctx, rs, spec, false)
}

// addClient registers spec; replace (ApplyClients) overwrites a client of
// the same id, otherwise an id is never reused.
func addClient(ctx context.Context, rs Records, spec ClientSpec, replace bool) (Registered, error) {
	if strings.TrimSpace(spec.Name) == "" {
		return Registered{}, errors.New("a client needs a name")
	}
	for _, r := range spec.RedirectURIs {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
			return Registered{}, fmt.Errorf("redirect URI %q: must be absolute, with a host and no fragment", r)
		}
	}
	id := spec.ID
	if id == "" {
		id = randomToken(16)
	} else if !clientIDRE.MatchString(id) {
		return Registered{}, fmt.Errorf("client_id %q: 1 to 128 of A-Z a-z 0-9 - . _ ~", id)
	}
	c := Client{ID: id, Name: spec.Name, RedirectURIs: spec.RedirectURIs, Scopes: spec.Scopes, Created: time.Now().UTC()}
	reg := Registered{ClientID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs}
	asym := len(spec.JWKS) > 0 || spec.JWKSURL != ""
	switch {
	case spec.Public && asym:
		return Registered{}, errors.New("a public client has no keys: give --public or --jwks/--jwks-url, not both")
	case len(spec.JWKS) > 0 && spec.JWKSURL != "":
		return Registered{}, errors.New("give --jwks or --jwks-url, not both")
	case spec.Public:
		c.AuthMethod = authNone
	case asym:
		c.AuthMethod = authPrivateJWT
		if spec.JWKSURL != "" {
			u, err := url.Parse(spec.JWKSURL)
			if err != nil || !u.IsAbs() || u.Host == "" {
				return Registered{}, fmt.Errorf("JWKS URL %q is not an absolute URL", spec.JWKSURL)
			}
			c.JWKSURL = spec.JWKSURL
		} else {
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(spec.JWKS, &set); err != nil {
				return Registered{}, fmt.Errorf("JWKS: %w", err)
			}
			if err := checkClientKeys(&set); err != nil {
				return Registered{}, err
			}
			c.JWKS = &set
		}
	default:
		c.AuthMethod = authSecret
		reg.ClientSecret = randomToken(32)
		if spec.Secret != "" {
			// A declared secret is the administrator's to keep: it is
			// not echoed back.
			if len(spec.Secret) < 32 {
				return Registered{}, errors.New("a declared client secret needs at least 32 characters")
			}
			reg.ClientSecret = ""
		}
		c.SecretHash = hashSecret(cmp.Or(spec.Secret, reg.ClientSecret))
	}
	if len(c.RedirectURIs) == 0 && c.AuthMethod != authPrivateJWT {
		return Registered{}, errors.New("an app that launches needs at least one --redirect-uri (only a backend service with keys can go without)")
	}
	if len(c.Scopes) == 0 {
		c.Scopes = DefaultScopes
		if len(c.RedirectURIs) == 0 {
			c.Scopes = DefaultSystemScopes
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return Registered{}, err
	}
	rec := store.Record{Kind: kindClient, Key: c.ID, Value: b}
	if replace {
		err = rs.PutRecord(ctx, rec)
	} else if err = rs.InsertRecord(ctx, rec); errors.Is(err, store.ErrVersionConflict) {
		err = fmt.Errorf("client_id %q is taken", c.ID)
	}
	if err != nil {
		return Registered{}, err
	}
	reg.AuthMethod, reg.Scope = c.AuthMethod, strings.Join(c.Scopes, " ")
	return reg, nil
}

func checkClientKeys(set *jose.JSONWebKeySet) error {
	if len(set.Keys) == 0 {
		return errors.New("JWKS has no keys")
	}
	var kids []string
	for _, k := range set.Keys {
		if k.KeyID == "" {
			return errors.New("every JWK needs a kid")
		}
		if slices.Contains(kids, k.KeyID) {
			return fmt.Errorf("kid %q appears twice", k.KeyID)
		}
		kids = append(kids, k.KeyID)
		if !k.IsPublic() {
			return fmt.Errorf("JWK %q is a private key: register the public half only", k.KeyID)
		}
	}
	return nil
}
