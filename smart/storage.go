package smart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/kiln-fhir/kiln/store"
)

// Records is the store the authorization server keeps all its state in,
// so that several Kiln processes sharing one backend share it too.
type Records = store.Records

// Record kinds. Keys of tokens and codes are fosite's signatures (the
// HMAC part of the token), never the token itself: a copy of the store
// does not hand out usable tokens.
const (
	kindClient   = "smart.client"    // client_id → Client
	kindUser     = "smart.user"      // username → User
	kindFail     = "smart.loginfail" // username → failure counter (lockout)
	kindLogin    = "smart.login"     // login cookie → username
	kindPending  = "smart.pending"   // authorize request waiting for login/consent
	kindLaunch   = "smart.launch"    // EHR launch handle → launch context
	kindCode     = "smart.code"      // authorization code signature → request
	kindPKCE     = "smart.pkce"      // authorization code signature → request
	kindOIDC     = "smart.oidc"      // authorization code signature → request
	kindAccess   = "smart.access"    // access token signature → request
	kindRefresh  = "smart.refresh"   // refresh token signature → request
	kindRevoked  = "smart.revoked"   // grant (fosite request id) → revoked
	kindJTI      = "smart.jti"       // client_id|jti of a used assertion
	kindKey      = "smart.key"       // kid → signing key
	kindSecret   = "smart.secret"    // "hmac" → token HMAC secret
	kindLink     = "smart.link"      // upstream "issuer subject" → username
	kindUpstream = "smart.upstream"  // state of an upstream sign-in round trip
)

// session is what a grant carries from consent to every token issued
// from it: the OpenID claims fosite signs, plus SMART launch context.
type session struct {
	*openid.DefaultSession `json:"oidc"`
	Patient                string `json:"patient,omitempty"`
	Encounter              string `json:"encounter,omitempty"`
	FHIRUser               string `json:"fhirUser,omitempty"`
	Banner                 bool   `json:"banner,omitempty"`
	// OnlineUntil bounds refresh tokens of an online_access grant
	// (without offline_access) to the sign-in they came from.
	OnlineUntil time.Time `json:"onlineUntil,omitzero"`
	// accessScope, when set, is the narrower scope a refresh asked for
	// (RFC 6749 §6): the access token is stored with it, the rotated
	// refresh token with the grant's. Never stored itself.
	accessScope []string
}

func newSession() *session { return &session{DefaultSession: openid.NewDefaultSession()} }

// Clone keeps the SMART fields: fosite clones the session of a grant when
// it refreshes it.
func (s *session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	c.DefaultSession = s.DefaultSession.Clone().(*openid.DefaultSession)
	return &c
}

// storedRequest is a fosite.Requester as JSON. The client is stored by
// id and read again on load, so a changed registration (removed redirect
// URI, narrowed scopes) applies to grants already made.
type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requestedAt"`
	ClientID          string          `json:"clientId"`
	RequestedScope    []string        `json:"requestedScope"`
	GrantedScope      []string        `json:"grantedScope"`
	RequestedAudience []string        `json:"requestedAudience"`
	GrantedAudience   []string        `json:"grantedAudience"`
	Form              url.Values      `json:"form"`
	Session           json.RawMessage `json:"session"`
	// Active is false once an authorization code was exchanged or a
	// refresh token rotated: fosite must then see the request again to
	// revoke what was issued from it.
	Active bool `json:"active"`
}

// storage implements the fosite storage interfaces the composed handlers
// need on store.Records.
type storage struct {
	rs  Records
	now func() time.Time
	// refreshLife bounds how long a used code or revocation must be
	// remembered: as long as a token issued from it can live.
	refreshLife time.Duration
	server      *Server
}

func (s *storage) put(ctx context.Context, kind, key string, req fosite.Requester, active bool, exp time.Time) error {
	sess, err := json.Marshal(req.GetSession())
	if err != nil {
		return err
	}
	sr := storedRequest{
		ID: req.GetID(), RequestedAt: req.GetRequestedAt(), ClientID: req.GetClient().GetID(),
		RequestedScope: req.GetRequestedScopes(), GrantedScope: req.GetGrantedScopes(),
		RequestedAudience: req.GetRequestedAudience(), GrantedAudience: req.GetGrantedAudience(),
		Form: req.GetRequestForm(), Session: sess, Active: active,
	}
	if ss, ok := req.GetSession().(*session); ok && kind == kindAccess && ss.accessScope != nil {
		sr.GrantedScope = ss.accessScope
	}
	b, err := json.Marshal(sr)
	if err != nil {
		return err
	}
	return s.rs.PutRecord(ctx, store.Record{Kind: kind, Key: key, Value: b, Expires: exp})
}

func (s *storage) load(ctx context.Context, kind, key string) (*fosite.Request, storedRequest, store.Record, error) {
	rec, err := s.rs.GetRecord(ctx, kind, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, storedRequest{}, rec, fosite.ErrNotFound
	}
	if err != nil {
		return nil, storedRequest{}, rec, err
	}
	var sr storedRequest
	if err := json.Unmarshal(rec.Value, &sr); err != nil {
		return nil, sr, rec, fmt.Errorf("smart: %s record: %w", kind, err)
	}
	c, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, sr, rec, err
	}
	sess := newSession()
	if err := json.Unmarshal(sr.Session, sess); err != nil {
		return nil, sr, rec, fmt.Errorf("smart: %s session: %w", kind, err)
	}
	req := &fosite.Request{
		ID: sr.ID, RequestedAt: sr.RequestedAt, Client: c,
		RequestedScope: sr.RequestedScope, GrantedScope: sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience, GrantedAudience: sr.GrantedAudience,
		Form: sr.Form, Session: sess,
	}
	if req.Form == nil {
		req.Form = url.Values{}
	}
	return req, sr, rec, nil
}

// revoked reports whether the grant was revoked (RFC 7009, or a reused
// code or refresh token).
func (s *storage) revoked(ctx context.Context, requestID string) (bool, error) {
	_, err := s.rs.GetRecord(ctx, kindRevoked, requestID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// loadToken loads an access or refresh token and refuses it when its
// grant was revoked.
func (s *storage) loadToken(ctx context.Context, kind, sig string) (*fosite.Request, storedRequest, error) {
	req, sr, _, err := s.load(ctx, kind, sig)
	if err != nil {
		return nil, sr, err
	}
	if r, err := s.revoked(ctx, req.ID); err != nil {
		return nil, sr, err
	} else if r {
		return nil, sr, fosite.ErrNotFound
	}
	return req, sr, nil
}

func expiry(req fosite.Requester, t fosite.TokenType, def time.Time) time.Time {
	if e := req.GetSession().GetExpiresAt(t); !e.IsZero() {
		return e
	}
	return def
}

// GetClient implements fosite.ClientManager.
func (s *storage) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := getClient(ctx, s.rs, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	s.server.decorate(c)
	return c, nil
}

// ClientAssertionJWTValid implements fosite.ClientManager; assertions are
// checked by Kiln's own client authentication (assertion.go), which
// records jtis with insertJTI.
func (s *storage) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	if _, err := s.rs.GetRecord(ctx, kindJTI, jti); err == nil {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT implements fosite.ClientManager.
func (s *storage) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	return s.insertJTI(ctx, jti, exp)
}

// insertJTI remembers a used assertion until it expires; a second use is
// ErrJTIKnown (client-confidential-asymmetric.html: "SHALL reject a jti
// already seen"). The insert is atomic, so two processes cannot both
// accept one assertion.
func (s *storage) insertJTI(ctx context.Context, jti string, exp time.Time) error {
	err := s.rs.InsertRecord(ctx, store.Record{Kind: kindJTI, Key: jti, Value: []byte{}, Expires: exp})
	if errors.Is(err, store.ErrVersionConflict) {
		return fosite.ErrJTIKnown
	}
	return err
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *storage) CreateAuthorizeCodeSession(ctx context.Context, sig string, req fosite.Requester) error {
	return s.put(ctx, kindCode, sig, req, true, expiry(req, fosite.AuthorizeCode, s.now().Add(10*time.Minute)))
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *storage) GetAuthorizeCodeSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	req, sr, _, err := s.load(ctx, kindCode, sig)
	if err != nil {
		return nil, err
	}
	if !sr.Active {
		// A spent code looked up again is a reuse wherever fosite looks
		// it up (it revokes only at the first lookup of the exchange; a
		// parallel exchange can find it spent at the second): revoke the
		// grant here, so that every path does.
		return req, s.reused(ctx, req.ID)
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
// It is a compare-and-set on the record: of two exchanges of one code
// racing across processes only one invalidates it, and the other fails.
// The used code is kept as long as a token issued from it can live, so
// that a second use can revoke those tokens (RFC 6749 §4.1.2).
func (s *storage) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	req, sr, rec, err := s.load(ctx, kindCode, sig)
	if err != nil {
		return fosite.ErrNotFound
	}
	if !sr.Active {
		return s.reused(ctx, req.ID)
	}
	sr.Active = false
	if rec.Value, err = json.Marshal(sr); err != nil {
		return err
	}
	rec.Expires = s.now().Add(s.refreshLife)
	if err := s.rs.SwapRecord(ctx, rec); err != nil {
		return s.reused(ctx, req.ID)
	}
	return nil
}

// reused answers an exchange that lost the code to another one. fosite
// revokes a reused code's grant only when the code was already spent at
// lookup; exchanges racing in parallel all find it unspent and the losers
// fail here instead, so the grant is revoked here too (RFC 6749 §4.1.2:
// tokens issued from a code used twice SHOULD be revoked). The mark is by
// request id and checked at every token lookup, so it also catches the
// winner's tokens stored after it.
func (s *storage) reused(ctx context.Context, requestID string) error {
	if err := s.revoke(ctx, requestID); err != nil {
		return err
	}
	return fosite.ErrInvalidatedAuthorizeCode
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (s *storage) CreatePKCERequestSession(ctx context.Context, sig string, req fosite.Requester) error {
	return s.put(ctx, kindPKCE, sig, req, true, expiry(req, fosite.AuthorizeCode, s.now().Add(10*time.Minute)))
}

// GetPKCERequestSession implements pkce.PKCERequestStorage.
func (s *storage) GetPKCERequestSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	req, _, _, err := s.load(ctx, kindPKCE, sig)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage.
//
// The session is left to expire with its code (minutes) instead of being
// deleted: an exchange racing the first one must get past PKCE to the
// code, find it spent and revoke the grant (reused); with the session
// gone it would fail on PKCE and the winner's tokens would stand. The
// spent code is what refuses every later exchange.
func (s *storage) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return nil
}

// CreateOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *storage) CreateOpenIDConnectSession(ctx context.Context, code string, req fosite.Requester) error {
	return s.put(ctx, kindOIDC, code, req, true, s.now().Add(10*time.Minute))
}

// GetOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *storage) GetOpenIDConnectSession(ctx context.Context, code string, _ fosite.Requester) (fosite.Requester, error) {
	req, _, _, err := s.load(ctx, kindOIDC, code)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeleteOpenIDConnectSession implements openid.OpenIDConnectRequestStorage.
func (s *storage) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return s.rs.DeleteRecord(ctx, kindOIDC, code)
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *storage) CreateAccessTokenSession(ctx context.Context, sig string, req fosite.Requester) error {
	return s.put(ctx, kindAccess, sig, req, true, expiry(req, fosite.AccessToken, s.now().Add(time.Hour)))
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *storage) GetAccessTokenSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	req, _, err := s.loadToken(ctx, kindAccess, sig)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *storage) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return s.rs.DeleteRecord(ctx, kindAccess, sig)
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *storage) CreateRefreshTokenSession(ctx context.Context, sig, _ string, req fosite.Requester) error {
	return s.put(ctx, kindRefresh, sig, req, true, expiry(req, fosite.RefreshToken, s.now().Add(s.refreshLife)))
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage: a rotated
// refresh token answers ErrInactiveToken with its request, so that fosite
// revokes the whole grant on reuse (RFC 6819 §5.2.2.3).
func (s *storage) GetRefreshTokenSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	req, sr, err := s.loadToken(ctx, kindRefresh, sig)
	if err != nil {
		return nil, err
	}
	if !sr.Active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *storage) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return s.rs.DeleteRecord(ctx, kindRefresh, sig)
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage: the used
// refresh token becomes inactive (compare-and-set, so two concurrent
// refreshes with one token cannot both succeed). Access tokens issued
// before stay valid until they expire.
func (s *storage) RotateRefreshToken(ctx context.Context, _ string, sig string) error {
	rec, err := s.rs.GetRecord(ctx, kindRefresh, sig)
	if err != nil {
		return fosite.ErrNotFound
	}
	var sr storedRequest
	if err := json.Unmarshal(rec.Value, &sr); err != nil {
		return err
	}
	if !sr.Active {
		return fosite.ErrInactiveToken
	}
	sr.Active = false
	if rec.Value, err = json.Marshal(sr); err != nil {
		return err
	}
	if err := s.rs.SwapRecord(ctx, rec); err != nil {
		return fosite.ErrSerializationFailure
	}
	return nil
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage by
// revoking the whole grant: every token of the request id is refused from
// now on, in every process (RFC 7009 §2.1).
func (s *storage) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.revoke(ctx, requestID)
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage; as above.
func (s *storage) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.revoke(ctx, requestID)
}

func (s *storage) revoke(ctx context.Context, requestID string) error {
	return s.rs.PutRecord(ctx, store.Record{Kind: kindRevoked, Key: requestID, Value: []byte{},
		Expires: s.now().Add(s.refreshLife)})
}
