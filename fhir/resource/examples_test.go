package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// invalidExamples are the official R4 examples that break the base
// specification: each references a resource type its element does not
// allow. Rejecting them, pointing at the element, is correct.
var invalidExamples = map[string]string{
	"DeviceMetric-example.json":        "DeviceMetric.parent",                         // a DeviceDefinition, want Device
	"DeviceUseStatement-example.json":  "DeviceUseStatement.reasonReference[0]",       // a Procedure
	"MedicationRequest-medrx0301.json": "MedicationRequest.dispenseRequest.performer", // a Practitioner, want Organization
	"Observation-clinical-gender.json": "Observation.performer[0]",                    // an Encounter
}

// TestExamples parses and stamps every official example and checks that
// what is stored is what was sent, apart from the meta the server sets.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../testdata/examples/*.json")
	if err != nil || len(files) < 300 {
		t.Fatalf("testdata/examples: %d files, %v", len(files), err)
	}
	lastUpdated := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	var seen atomic.Int32 // known-invalid examples met
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Parse(body)
			if want, bad := invalidExamples[name]; bad {
				seen.Add(1)
				var oe *outcome.Error
				if !errors.As(err, &oe) {
					t.Fatalf("Parse = %v, want *outcome.Error", err)
				}
				if oe.Status != http.StatusBadRequest || len(oe.Issues) != 1 ||
					oe.Issues[0].Code != outcome.CodeValue || !reflect.DeepEqual(oe.Issues[0].Expression, []string{want}) {
					t.Fatalf("Parse = %#v, want 400 with one value issue at %s", oe, want)
				}
				if !strings.Contains(oe.Issues[0].Diagnostics, "invalid reference") {
					t.Errorf("diagnostics %q do not say the reference is invalid", oe.Issues[0].Diagnostics)
				}
				if _, err := Parse(outcome.Resource(oe.Issues)); err != nil {
					t.Errorf("the OperationOutcome is not valid FHIR: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var sent struct {
				ResourceType string `json:"resourceType"`
				ID           string `json:"id"`
			}
			json.Unmarshal(body, &sent)
			if r.Type != sent.ResourceType || r.ID != sent.ID {
				t.Fatalf("Parse: Type %q ID %q, want %q %q", r.Type, r.ID, sent.ResourceType, sent.ID)
			}
			out, err := r.Stamp(sent.ID, 1, lastUpdated)
			if err != nil {
				t.Fatalf("Stamp: %v", err)
			}

			got, want := decode(t, out), decode(t, body)
			meta, _ := got["meta"].(map[string]any)
			if meta["versionId"] != "1" || meta["lastUpdated"] != "2024-05-06T07:08:09.123456Z" {
				t.Errorf("meta = %v, want versionId 1 and lastUpdated 2024-05-06T07:08:09.123456Z", got["meta"])
			}
			dropServerMeta(got)
			dropServerMeta(want)
			if d := diff("", want, got); d != "" {
				t.Errorf("stored resource differs from the one sent: %s", d)
			}
			// Stamp consumed r's proto (it keeps a template instead):
			// compare with the marshalling of a fresh parse.
			fresh, err := parse(body, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			checkCanonical(t, fresh, out, lastUpdated)
		})
	}
	t.Cleanup(func() {
		if n := int(seen.Load()); n != len(invalidExamples) {
			t.Errorf("found %d of the %d known-invalid examples", n, len(invalidExamples))
		}
	})
}

// checkCanonical checks that out is google/fhir's marshalling of r with
// only the resourceType properties moved, each to the front of its object.
func checkCanonical(t *testing.T, r *Resource, out []byte, lastUpdated time.Time) {
	t.Helper()
	raw, err := r.marshal(r.ID, 1, lastUpdated)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte(`{"resourceType":"`+r.Type+`"`)) {
		t.Errorf("output does not start with its resourceType: %.60s", out)
	}
	if got, want := withoutResourceType(out), withoutResourceType(raw); got != want {
		t.Errorf("output differs from google/fhir's beyond the place of resourceType")
	}
	if n, m := bytes.Count(out, []byte(`"resourceType":`)), bytes.Count(raw, []byte(`"resourceType":`)); n != m {
		t.Errorf("%d resourceType properties, marshaller wrote %d", n, m)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := resourceTypesFirst(dec); err != nil {
		t.Error(err)
	}
}

var resourceTypeProp = regexp.MustCompile(`"resourceType":"[A-Za-z]+",?`)

func withoutResourceType(b []byte) string {
	return strings.ReplaceAll(string(resourceTypeProp.ReplaceAll(b, nil)), ",}", "}")
}

// resourceTypesFirst walks one JSON value and fails if an object has a
// resourceType property anywhere but first.
func resourceTypesFirst(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		for i := 0; dec.More(); i++ {
			k, _ := dec.Token()
			if k == "resourceType" && i > 0 {
				return fmt.Errorf("resourceType is property %d of its object", i)
			}
			if err := resourceTypesFirst(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	case json.Delim('['):
		for dec.More() {
			if err := resourceTypesFirst(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	}
	return err
}

// decode reads JSON keeping numbers as their text, so 1.50 ≠ 1.5.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return m
}

// dropServerMeta removes what Stamp sets; a meta left empty goes too.
func dropServerMeta(m map[string]any) {
	meta, ok := m["meta"].(map[string]any)
	if !ok {
		return
	}
	delete(meta, "versionId")
	delete(meta, "lastUpdated")
	if len(meta) == 0 {
		delete(m, "meta")
	}
}

// diff describes the first difference between two decoded JSON values.
func diff(path string, want, got any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: got %v, want an object", path, got)
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			if d := diff(path+"."+k, w[k], g[k]); d != "" {
				return d
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: got %v, want %v", path, got, want)
		}
		for i := range w {
			if d := diff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i]); d != "" {
				return d
			}
		}
	default:
		if want != got {
			return fmt.Sprintf("%s: got %#v, want %#v", path, got, want)
		}
	}
	return ""
}
