package smart

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"

	"github.com/kiln-fhir/kiln/store/mongo"
	"github.com/kiln-fhir/kiln/store/mongo/mongotest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// TestSharedStore: two servers on one SQLite file through separate
// handles, as two Kiln processes behind one load balancer, agree on
// everything: keys, tokens, revocations and the jti replay cache.
func TestSharedStore(t *testing.T) {
	e := newEnv(t, nil)
	st2, err := sqlite.Open(t.Context(), sqlite.Config{Path: e.path})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	sharedStore(t, e, st2)
}

// TestSharedStoreOnMongo is TestSharedStore with two Kiln processes on one
// MongoDB database (issue 7, scale-out): FerretDB in-process, or
// KILN_TEST_MONGO_URI.
func TestSharedStoreOnMongo(t *testing.T) {
	srv := mongotest.Start(t)
	db := fmt.Sprintf("smart_shared_%d", time.Now().UnixNano())
	open := func() *mongo.Store {
		st, err := mongo.Open(t.Context(), srv.URI, mongo.Options{Database: db,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	sharedStore(t, newEnvOn(t, nil, open()), open())
}

// sharedStore checks that a second server on st2, the store of e seen
// through another handle, agrees with e's on everything.
func sharedStore(t *testing.T, e *env, st2 Records) {
	b, err := New(t.Context(), Config{BaseURL: e.base}, st2)
	if err != nil {
		t.Fatal(err)
	}
	// B serves the same JWKS: it did not make a key of its own.
	set, _ := b.keys.public(t.Context())
	if a := e.jwks(); len(set.Keys) != 1 || set.Keys[0].KeyID != a.Keys[0].KeyID {
		t.Errorf("second process keys %v, first %v", set.Keys, a.Keys)
	}

	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{Public: true})
	tok := e.standalone(e.oauth(app, "launch/patient", "patient/*.rs"), "alice", nil)
	authB := func() error {
		r := httptest.NewRequest(http.MethodGet, "/fhir/Patient/p1", nil)
		r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		_, err := b.Authenticate(r)
		return err
	}
	if err := authB(); err != nil {
		t.Fatalf("token from A at B: %v", err)
	}
	if status, _, _ := e.postForm("/auth/revoke", url.Values{"token": {tok.AccessToken}, "client_id": {app.ClientID}}, "", ""); status != 200 {
		t.Fatalf("revoke at A: %d", status)
	}
	if err := authB(); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token revoked at A still valid at B: %v", err)
	}

	// An assertion accepted by A is a replay at B.
	svc := newService(t, jose.RS384)
	pub, _ := json.Marshal(svc.jwks)
	svc.id = e.client(ClientSpec{Name: "svc", JWKS: pub}).ClientID
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"system/*.rs"},
		"client_assertion_type": {assertionType}, "client_assertion": {svc.assertion(t, e.base+"/auth/token", nil)}}
	if status, _, body := e.postForm("/auth/token", form, "", ""); status != 200 {
		t.Fatalf("assertion at A: %d %v", status, body)
	}
	req := httptest.NewRequest(http.MethodPost, e.base+"/auth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, req)
	if rec.Code/100 != 4 || !strings.Contains(rec.Body.String(), "invalid_client") {
		t.Errorf("replayed assertion at B: %d %s", rec.Code, rec.Body)
	}
}
