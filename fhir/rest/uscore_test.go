package rest_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/apitest"
	"github.com/kiln-fhir/kiln/fhir/rest"
	"github.com/kiln-fhir/kiln/store/sqlite"
)

// TestCapabilitiesUSCore: what the Inferno US Core kit reads from the
// CapabilityStatement (checklist A-CS-06): instantiates names US Core's
// server CapabilityStatement, and supportedProfile lists US Core Patient
// and the other profiles of the US Core 3.1.0 server statement.
func TestCapabilitiesUSCore(t *testing.T) {
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "kiln.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := httptest.NewServer(rest.New(rest.Config{}, db))
	t.Cleanup(srv.Close)
	c := &apitest.Client{T: t, Base: srv.URL, HTTP: srv.Client()}
	cs := c.Do("GET", "/metadata", nil).JSON(t)
	inst, _ := cs["instantiates"].([]any)
	if !slices.ContainsFunc(inst, func(v any) bool {
		s, _ := v.(string)
		return strings.HasPrefix(s, "http://hl7.org/fhir/us/core/CapabilityStatement/us-core-server")
	}) {
		t.Errorf("instantiates %v: no US Core server CapabilityStatement", inst)
	}
	const sd = "http://hl7.org/fhir/us/core/StructureDefinition/"
	want := map[string]string{
		"Patient": sd + "us-core-patient", "Observation": sd + "us-core-observation-lab",
		"Condition": sd + "us-core-condition", "MedicationRequest": sd + "us-core-medicationrequest",
		"DiagnosticReport": sd + "us-core-diagnosticreport-lab", "Provenance": sd + "us-core-provenance",
	}
	for _, res := range cs["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
		res := res.(map[string]any)
		typ := res["type"].(string)
		profiles, _ := res["supportedProfile"].([]any)
		if p, ok := want[typ]; ok {
			if !slices.Contains(profiles, any(p)) {
				t.Errorf("%s supportedProfile %v, want %s among them", typ, profiles, p)
			}
			delete(want, typ)
		} else if typ == "Communication" && profiles != nil {
			t.Errorf("Communication has no US Core 3.1.0 profile, lists %v", profiles)
		}
	}
	if len(want) > 0 {
		t.Errorf("no resource entry for %v", want)
	}
}
