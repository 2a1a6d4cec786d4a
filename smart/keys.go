package smart

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v3"

	"github.com/kiln-fhir/kiln/store"
)

// Signing keys. id_tokens are signed RS256 (scopes-and-launch-context.html
// #scopes-for-requesting-identity-data: "SHALL support RS256") with the
// newest key; the JWKS publishes the newest publishedKeys keys, so a token
// signed just before a rotation still verifies. Keys live in the store
// (PKCS#8 DER), created on first start and by RotateKeys, and are read
// again at most every keyCacheFor, so every process signs with the key
// another one created.
const (
	publishedKeys = 2
	keyCacheFor   = time.Minute
)

type storedKey struct {
	KID     string    `json:"kid"`
	PKCS8   []byte    `json:"pkcs8"`
	Created time.Time `json:"created"`
}

type keyring struct {
	rs Records

	mu      sync.Mutex         // guards the cache below
	keys    []*jose.JSONWebKey // newest first, private
	fetched time.Time
}

// RotateKeys creates a new signing key; id_tokens are signed with it
// from then on (within a minute in other processes), and the previous key
// stays published until the next rotation.
func RotateKeys(ctx context.Context, rs Records) (kid string, err error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	// kid: the RFC 7638 thumbprint, so the same key always has the same id.
	tp, err := (&jose.JSONWebKey{Key: &k.PublicKey}).Thumbprint(crypto256)
	if err != nil {
		return "", err
	}
	kid = base64.RawURLEncoding.EncodeToString(tp)
	b, _ := json.Marshal(storedKey{KID: kid, PKCS8: der, Created: time.Now().UTC()})
	if err := rs.InsertRecord(ctx, store.Record{Kind: kindKey, Key: kid, Value: b}); err != nil {
		return "", err
	}
	return kid, nil
}

const crypto256 = crypto.SHA256

func (k *keyring) load(ctx context.Context) ([]*jose.JSONWebKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys != nil && time.Since(k.fetched) < keyCacheFor {
		return k.keys, nil
	}
	recs, err := k.rs.ListRecords(ctx, kindKey)
	if err != nil {
		return nil, err
	}
	var sks []storedKey
	for _, r := range recs {
		var sk storedKey
		if err := json.Unmarshal(r.Value, &sk); err != nil {
			return nil, fmt.Errorf("smart: signing key %s: %w", r.Key, err)
		}
		sks = append(sks, sk)
	}
	slices.SortFunc(sks, func(a, b storedKey) int { return b.Created.Compare(a.Created) })
	var keys []*jose.JSONWebKey
	for _, sk := range sks[:min(len(sks), publishedKeys)] {
		priv, err := x509.ParsePKCS8PrivateKey(sk.PKCS8)
		if err != nil {
			return nil, fmt.Errorf("smart: signing key %s: %w", sk.KID, err)
		}
		keys = append(keys, &jose.JSONWebKey{Key: priv, KeyID: sk.KID, Algorithm: string(jose.RS256), Use: "sig"})
	}
	if len(keys) == 0 {
		return nil, errors.New("smart: no signing key")
	}
	k.keys, k.fetched = keys, time.Now()
	return keys, nil
}

// ensure creates the first key if the store has none.
func (k *keyring) ensure(ctx context.Context) error {
	recs, err := k.rs.ListRecords(ctx, kindKey)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		if _, err := RotateKeys(ctx, k.rs); err != nil {
			return err
		}
	}
	_, err = k.load(ctx)
	return err
}

// signing returns the current private key, for fosite's signer.
func (k *keyring) signing(ctx context.Context) (any, error) {
	keys, err := k.load(ctx)
	if err != nil {
		return nil, err
	}
	return keys[0], nil
}

// public is the JWKS document.
func (k *keyring) public(ctx context.Context) (jose.JSONWebKeySet, error) {
	keys, err := k.load(ctx)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	var set jose.JSONWebKeySet
	for _, key := range keys {
		set.Keys = append(set.Keys, key.Public())
	}
	return set, nil
}

// hmacSecret is the secret fosite signs opaque tokens with, created once
// per store; InsertRecord settles a race between two first starts.
func hmacSecret(ctx context.Context, rs Records) ([]byte, error) {
	for range 2 {
		rec, err := rs.GetRecord(ctx, kindSecret, "hmac")
		if err == nil {
			return rec.Value, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		b := make([]byte, 32)
		rand.Read(b)
		err = rs.InsertRecord(ctx, store.Record{Kind: kindSecret, Key: "hmac", Value: b})
		if err != nil && !errors.Is(err, store.ErrVersionConflict) {
			return nil, err
		}
	}
	return nil, errors.New("smart: token secret: could not read or create")
}
