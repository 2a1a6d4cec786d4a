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
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// TestLeftOutParamsAreListed: issue 3, "any parameter left out is listed,
// with the reason, in the CapabilityStatement and the README — none
// skipped silently" (conformance/ACCEPTANCE.md).
func TestLeftOutParamsAreListed(t *testing.T) {
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(rest.New(rest.Config{}, db))
	defer srv.Close()
	c := &apitest.Client{T: t, Base: srv.URL, HTTP: srv.Client()}
	description, _ := c.Do("GET", "/metadata", nil).JSON(t)["description"].(string)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	left := search.Default().Unsupported()
	for _, u := range left {
		if !strings.Contains(description, u.Name+": "+u.Reason) {
			t.Errorf("CapabilityStatement.description does not list %s with its reason: %q", u.Name, description)
		}
		if !strings.Contains(string(readme), "`"+u.Name+"`") {
			t.Errorf("the README does not name %s, which is not served", u.Name)
		}
	}
	if len(left) == 0 {
		t.Log("the registry leaves nothing out")
	}
}

// TestCapabilitiesETag: A-CS-02, the CapabilityStatement's ETag changes
// when the statement does (here: another software version), and a client
// holding the current one gets 304.
func TestCapabilitiesETag(t *testing.T) {
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	etags := map[string]string{}
	for _, version := range []string{"1.0.0", "1.0.1"} {
		srv := httptest.NewServer(rest.New(rest.Config{Version: version}, db))
		c := &apitest.Client{T: t, Base: srv.URL, HTTP: srv.Client()}
		r := c.Do("GET", "/metadata", nil)
		etags[version] = r.Header.Get("ETag")
		if etags[version] == "" || !strings.Contains(string(r.Body), `"version":"`+version+`"`) {
			t.Errorf("version %s: ETag %q, body %.200s", version, etags[version], r.Body)
		}
		if r := c.Do("GET", "/metadata", nil, "If-None-Match", etags[version]); r.Status != 304 || len(r.Body) != 0 {
			t.Errorf("version %s: If-None-Match with the current ETag: %d, %d body bytes", version, r.Status, len(r.Body))
		}
		srv.Close()
	}
	if etags["1.0.0"] == etags["1.0.1"] {
		t.Errorf("two different statements share the ETag %s", etags["1.0.0"])
	}
}
