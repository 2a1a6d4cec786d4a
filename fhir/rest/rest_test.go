package rest_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/apitest"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// TestAPIOnSQLite runs the HTTP conformance suite against the API over a
// real SQLite file, on real HTTP over loopback, with the store's read
// cache off and on (as kiln serve runs it): every scenario that reads
// after a write checks that the cache never answers a replaced version.
func TestAPIOnSQLite(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cacheBytes int64
	}{{"no cache", 0}, {"read cache", 64 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db"), CacheBytes: tc.cacheBytes})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			const maxBody = 4 << 20
			srv := httptest.NewServer(rest.New(rest.Config{MaxBody: maxBody}, db))
			defer srv.Close()
			apitest.Run(t, srv.URL, apitest.Options{
				MaxBody:  maxBody,
				Examples: apitest.LoadExamples(t, "../../testdata/examples"),
				Invalid:  apitest.InvalidExamples,
			})
			if hits, _ := db.CacheStats(); tc.cacheBytes > 0 && hits == 0 {
				t.Error("the read cache never answered: the run did not exercise it")
			}
		})
	}
}

func TestBaseURLFromConfig(t *testing.T) {
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(rest.New(rest.Config{BaseURL: "https://fhir.example.org/r4/"}, db))
	defer srv.Close()
	c := &apitest.Client{T: t, Base: srv.URL, HTTP: srv.Client()}
	r := c.Do("POST", "/Patient", []byte(`{"resourceType":"Patient"}`))
	if loc := r.Header.Get("Location"); !strings.HasPrefix(loc, "https://fhir.example.org/r4/Patient/") {
		t.Errorf("Location %q does not use the configured base", loc)
	}
}
