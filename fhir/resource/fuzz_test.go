package resource

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// FuzzParse checks that Parse answers any body with a resource or a 400,
// that what it accepts can be stamped and its canonical JSON parsed again,
// and that the canonical JSON is google/fhir's marshal byte for byte
// whichever path made it (encode.go).
func FuzzParse(f *testing.F) {
	f.Add([]byte(patientJSON))
	f.Add([]byte(observationJSON))
	f.Add([]byte(`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","active":true}}]}`))
	f.Add([]byte(`{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"x"}],"managingOrganization":{"reference":"#o"}}`))
	f.Add([]byte(`{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"id":"x"}]}]}`))
	f.Add([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"effectiveDateTime":"2015-02-07T13:28:17.25-00:00","valueInteger":-0}`))
	f.Add([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/1","_reference":{"id":"r"}},"valueQuantity":{"value":-0.50e1}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Parse(body)
		if err != nil {
			var oe *outcome.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest || len(oe.Issues) == 0 {
				t.Fatalf("Parse(%q) = %v, want a 400 with issues", body, err)
			}
			return
		}
		out, err := r.Stamp("x", 1, time.Unix(0, 0))
		if err != nil {
			t.Fatalf("Stamp after Parse(%q): %v", body, err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("canonical JSON %s of %q does not parse: %v", out, body, err)
		}
		old, err := parse(body, nil, false)
		if err != nil {
			t.Fatalf("Parse(%q) without the body path: %v", body, err)
		}
		want, err := old.marshal("x", 1, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		resourceTypeFirst(want)
		if !bytes.Equal(out, want) {
			t.Fatalf("canonical JSON of %q:\n got %s\nwant %s", body, out, want)
		}
	})
}
