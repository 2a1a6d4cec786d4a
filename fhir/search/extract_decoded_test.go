package search

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/synthea"
	"github.com/kiln-fhir/kiln/fhir/resource"
)

// TestExtractDecoded checks that a write which extracts from the value
// Stamp left decoded (resource.Resource.Decoded, ExtractValueBase) gets the
// entries that extracting from the stored bytes gives, over every official
// example and Synthea resource.
func TestExtractDecoded(t *testing.T) {
	var bodies [][]byte
	files, err := filepath.Glob("../../testdata/examples/*.json")
	if err != nil || len(files) < 300 {
		t.Fatalf("testdata/examples: %d files, %v", len(files), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	entries, err := synthea.Entries("../../testdata/synthea")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		bodies = append(bodies, e.Resource)
	}
	const base = "http://kiln.test/fhir"
	decoded := 0
	for i, b := range bodies {
		r, err := resource.Parse(b)
		if err != nil {
			continue // the four known-invalid examples (fhir/resource tests them)
		}
		for v := int64(1); v <= 2; v++ {
			body, err := r.Stamp("id-1", v, time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			want, err := Default().ExtractBase(r.Type, body, base)
			if err != nil {
				t.Fatalf("resource %d: %v", i, err)
			}
			val := r.Decoded()
			if val == nil {
				continue
			}
			decoded++
			got, err := Default().ExtractValueBase(r.Type, val, base)
			if err != nil {
				t.Fatalf("resource %d: %v", i, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("resource %d (%s) version %d: from the decoded value\n%s\nwant\n%s", i, r.Type, v, render(got), render(want))
			}
		}
	}
	if decoded < len(bodies) {
		t.Errorf("Decoded served %d of %d stamps", decoded, 2*len(bodies))
	}
}
