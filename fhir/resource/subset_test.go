package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

const patientJSON = `{
  "resourceType": "Patient",
  "id": "p1",
  "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"], "tag": [{"system": "http://example.org/tags", "code": "vip"}]},
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane Doe</div>"},
  "extension": [{"url": "http://example.org/weight", "valueDecimal": 70.50}],
  "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
  "active": true,
  "name": [{"family": "Doe", "given": ["Jane"]}],
  "telecom": [{"system": "phone", "value": "555-0100"}],
  "gender": "female",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "deceasedBoolean": false,
  "address": [{"city": "Springfield"}],
  "maritalStatus": {"text": "married"},
  "multipleBirthInteger": 2,
  "contact": [{"name": {"family": "Doe"}}],
  "communication": [{"language": {"text": "English"}}],
  "generalPractitioner": [{"reference": "Practitioner/1"}],
  "managingOrganization": {"reference": "Organization/1"}
}`

const observationJSON = `{
  "resourceType": "Observation",
  "id": "o1",
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">1.50 kg</div>"},
  "status": "final",
  "category": [{"text": "vital-signs"}],
  "code": {"text": "weight"},
  "subject": {"reference": "Patient/p1"},
  "effectiveDateTime": "2024-01-02T03:04:05+00:00",
  "valueQuantity": {"value": 1.50, "unit": "kg"},
  "interpretation": [{"text": "normal"}],
  "note": [{"text": "fine"}]
}`

// stored returns body as the store keeps it: parsed and stamped.
func stored(t *testing.T, body string) []byte {
	t.Helper()
	r, err := Parse([]byte(body))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	out, err := r.Stamp(r.ID, 3, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("Stamp: %v", err)
	}
	return out
}

func keysOf(t *testing.T, b []byte) []string {
	t.Helper()
	props, err := properties(b)
	if err != nil {
		t.Fatalf("properties(%s): %v", b, err)
	}
	var keys []string
	for _, p := range props {
		keys = append(keys, p.key)
	}
	return keys
}

var (
	subsettedTag = map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
	vipTag       = map[string]any{"system": "http://example.org/tags", "code": "vip"}
)

func TestSubset(t *testing.T) {
	patient, observation := stored(t, patientJSON), stored(t, observationJSON)
	tests := []struct {
		name string
		in   []byte
		do   func([]byte) ([]byte, error)
		keys []string // top-level properties of the result, in order
		tags []any    // meta.tag of the result
	}{{
		// Patient has no mandatory element; contact, communication,
		// maritalStatus, multipleBirth, generalPractitioner, text and
		// extension are not isSummary in R4.
		name: "Patient _summary=true",
		in:   patient,
		do:   func(b []byte) ([]byte, error) { return Summary(b, "true") },
		keys: []string{"resourceType", "_birthDate", "active", "address", "birthDate", "deceasedBoolean", "gender",
			"id", "identifier", "managingOrganization", "meta", "name", "telecom"},
		tags: []any{vipTag, subsettedTag},
	}, {
		name: "Patient _summary=text",
		in:   patient,
		do:   func(b []byte) ([]byte, error) { return Summary(b, "text") },
		keys: []string{"resourceType", "id", "meta", "text"},
		tags: []any{vipTag, subsettedTag},
	}, {
		name: "Patient _summary=data",
		in:   patient,
		do:   func(b []byte) ([]byte, error) { return Summary(b, "data") },
		keys: []string{"resourceType", "_birthDate", "active", "address", "birthDate", "communication", "contact",
			"deceasedBoolean", "extension", "gender", "generalPractitioner", "id", "identifier", "managingOrganization",
			"maritalStatus", "meta", "multipleBirthInteger", "name", "telecom"},
		tags: []any{vipTag, subsettedTag},
	}, {
		name: "Patient _summary=false",
		in:   patient,
		do:   func(b []byte) ([]byte, error) { return Summary(b, "false") },
		keys: keysOf(t, patient),
		tags: []any{vipTag},
	}, {
		name: "Patient _elements=birthDate,deceased",
		in:   patient,
		do:   func(b []byte) ([]byte, error) { return Elements(b, []string{"birthDate", " deceased"}) },
		keys: []string{"resourceType", "_birthDate", "birthDate", "deceasedBoolean", "id", "meta"},
		tags: []any{vipTag, subsettedTag},
	}, {
		name: "Patient _elements with type prefixes",
		in:   patient,
		do: func(b []byte) ([]byte, error) {
			return Elements(b, []string{"Patient.gender", "Observation.name", "deceased[x]", "nosuch", ""})
		},
		keys: []string{"resourceType", "deceasedBoolean", "gender", "id", "meta"},
		tags: []any{vipTag, subsettedTag},
	}, {
		name: "Observation _elements=status keeps mandatory code",
		in:   observation,
		do:   func(b []byte) ([]byte, error) { return Elements(b, []string{"status"}) },
		keys: []string{"resourceType", "code", "id", "meta", "status"},
		tags: []any{subsettedTag},
	}, {
		name: "Observation _elements=value",
		in:   observation,
		do:   func(b []byte) ([]byte, error) { return Elements(b, []string{"value"}) },
		keys: []string{"resourceType", "code", "id", "meta", "status", "valueQuantity"},
		tags: []any{subsettedTag},
	}, {
		name: "Observation _elements=valueQuantity",
		in:   observation,
		do:   func(b []byte) ([]byte, error) { return Elements(b, []string{"valueQuantity"}) },
		keys: []string{"resourceType", "code", "id", "meta", "status", "valueQuantity"},
		tags: []any{subsettedTag},
	}, {
		name: "Observation _summary=true",
		in:   observation,
		do:   func(b []byte) ([]byte, error) { return Summary(b, "true") },
		keys: []string{"resourceType", "code", "effectiveDateTime", "id", "meta", "status", "subject", "valueQuantity"},
		tags: []any{subsettedTag},
	}, {
		name: "Observation _summary=text keeps mandatory status and code",
		in:   observation,
		do:   func(b []byte) ([]byte, error) { return Summary(b, "text") },
		keys: []string{"resourceType", "code", "id", "meta", "status", "text"},
		tags: []any{subsettedTag},
	}, {
		name: "_summary=data without text is whole",
		in:   stored(t, `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`),
		do:   func(b []byte) ([]byte, error) { return Summary(b, "data") },
		keys: []string{"resourceType", "code", "id", "meta", "status"},
		tags: nil,
	}, {
		name: "_elements naming everything is whole",
		in:   stored(t, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueString":"a"}`),
		do:   func(b []byte) ([]byte, error) { return Elements(b, []string{"value"}) },
		keys: []string{"resourceType", "code", "id", "meta", "status", "valueString"},
		tags: nil,
	}, {
		name: "SUBSETTED is not added twice",
		in: []byte(`{"resourceType":"Patient","gender":"male","meta":{"tag":[{"code":"SUBSETTED",` +
			`"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue"}]},"text":{"div":"x"}}`),
		do:   func(b []byte) ([]byte, error) { return Summary(b, "true") },
		keys: []string{"resourceType", "gender", "meta"},
		tags: []any{subsettedTag},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.do(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(out) {
				t.Fatalf("invalid JSON: %s", out)
			}
			if got := keysOf(t, out); !reflect.DeepEqual(got, tt.keys) {
				t.Errorf("properties\n got %q\nwant %q", got, tt.keys)
			}
			var got struct {
				Meta struct {
					Tag []any `json:"tag"`
				} `json:"meta"`
			}
			json.Unmarshal(out, &got)
			if !reflect.DeepEqual(got.Meta.Tag, tt.tags) {
				t.Errorf("meta.tag = %v, want %v", got.Meta.Tag, tt.tags)
			}
			if tt.tags == nil && !bytes.Equal(out, tt.in) {
				t.Errorf("nothing left out, yet the body changed:\n%s\n%s", out, tt.in)
			}
			// What is kept is kept byte for byte (1.50 stays 1.50).
			in, _ := properties(tt.in)
			outProps, _ := properties(out)
			for _, o := range outProps {
				for _, i := range in {
					if i.key == o.key && o.key != "meta" && !bytes.Equal(i.whole, o.whole) {
						t.Errorf("%s changed: %s → %s", o.key, i.whole, o.whole)
					}
				}
			}
		})
	}
}

// One whole response, to the byte.
func TestElementsExact(t *testing.T) {
	in := []byte(`{"resourceType":"Observation","code":{"text":"weight"},"id":"o1",` +
		`"meta":{"lastUpdated":"2024-01-01T00:00:00.000000Z","versionId":"3"},"note":[{"text":"n"}],` +
		`"status":"final","valueQuantity":{"unit":"kg","value":1.50}}`)
	want := `{"resourceType":"Observation","code":{"text":"weight"},"id":"o1",` +
		`"meta":{"lastUpdated":"2024-01-01T00:00:00.000000Z","tag":[{"code":"SUBSETTED","system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue"}],"versionId":"3"},` +
		`"status":"final","valueQuantity":{"unit":"kg","value":1.50}}`
	out, err := Elements(in, []string{"value"})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}

	// Without a meta, one is added where the canonical order puts it.
	out, err = Summary([]byte(`{"resourceType":"Patient","gender":"male","id":"x","text":{"div":"x"}}`), "true")
	if err != nil {
		t.Fatal(err)
	}
	want = `{"resourceType":"Patient","gender":"male","id":"x","meta":{"tag":[` + subsetted + `]}}`
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	out, err = Summary([]byte(` {"resourceType" : "Patient" , "active":true, "text" : {"div":"x"} } `), "true")
	if err != nil {
		t.Fatal(err)
	}
	want = `{"resourceType" : "Patient","active":true,"meta":{"tag":[` + subsetted + `]}}`
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestSubsetErrors(t *testing.T) {
	patient := stored(t, patientJSON)
	for _, mode := range []string{"count", "TRUE", "", "yes"} {
		_, err := Summary(patient, mode)
		var oe *outcome.Error
		if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest {
			t.Errorf("Summary(%q) = %v, want a 400", mode, err)
		}
	}
	for _, body := range []string{
		``, `[]`, `null`, `{`, `{"resourceType":"Patient"`, `{"resourceType":"Patient",}`, `{"resourceType":"Patient" "id":"x"}`,
		`{"resourceType":"Patient","id":"x}`, `{"resourceType":"Patient","id":}`, `{resourceType:"Patient"}`,
		`{"id":"x"}`, `{"resourceType":"Nope","id":"x"}`, `{"resourceType":"Patient","meta":[],"text":{}}`,
		`{"resourceType":"Patient","meta":{"tag":{}},"text":{}}`,
	} {
		if out, err := Summary([]byte(body), "true"); err == nil {
			t.Errorf("Summary(%s) = %s, want an error", body, out)
		}
	}
}

// FuzzSubset checks that no input makes Summary or Elements panic, and
// that valid objects give valid JSON.
func FuzzSubset(f *testing.F) {
	f.Add([]byte(patientJSON), "true")
	f.Add([]byte(observationJSON), "text")
	f.Add([]byte(`{"resourceType":"Patient","meta":{"tag":[]},"text":{"div":"\"}"}}`), "data")
	f.Add([]byte(`{"resourceType":"Patient","a":[1,{"b":"]"}],"text":1}`), "true")
	f.Fuzz(func(t *testing.T, body []byte, mode string) {
		for _, do := range []func() ([]byte, error){
			func() ([]byte, error) { return Summary(body, mode) },
			func() ([]byte, error) { return Elements(body, []string{mode}) },
		} {
			out, err := do()
			if err == nil && json.Valid(body) && !json.Valid(out) {
				t.Errorf("valid %s gave invalid %s", body, out)
			}
		}
	})
}
