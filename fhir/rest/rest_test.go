package rest_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/apitest"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// invalidExamples are the official examples that break the base
// specification (wrong reference targets), with the element the
// OperationOutcome must name.
var invalidExamples = map[string]string{
	"DeviceMetric-example.json":        "DeviceMetric.parent",
	"DeviceUseStatement-example.json":  "DeviceUseStatement.reasonReference[0]",
	"MedicationRequest-medrx0301.json": "MedicationRequest.dispenseRequest.performer",
	"Observation-clinical-gender.json": "Observation.performer[0]",
}

func loadExamples(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("../../testdata/examples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

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
				Examples: loadExamples(t),
				Invalid:  invalidExamples,
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
