package resource

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// FuzzParse checks that Parse answers any body with a resource or a 400,
// and that what it accepts can be stamped and its canonical JSON parsed
// again.
func FuzzParse(f *testing.F) {
	f.Add([]byte(patientJSON))
	f.Add([]byte(observationJSON))
	f.Add([]byte(`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","active":true}}]}`))
	f.Add([]byte(`{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"x"}],"managingOrganization":{"reference":"#o"}}`))
	f.Add([]byte(`{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"id":"x"}]}]}`))
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
	})
}
