package search

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/synthea"
)

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// only keeps the entries of the named parameters.
func only(entries []Entry, params ...string) []Entry {
	var out []Entry
	for _, e := range entries {
		for _, p := range params {
			if e.Param == p {
				out = append(out, e)
			}
		}
	}
	return out
}

func render(es []Entry) string {
	b, _ := json.MarshalIndent(es, "", "  ")
	return string(b)
}

const patientJSON = `{
  "resourceType": "Patient",
  "id": "example",
  "meta": {"versionId": "2", "lastUpdated": "2024-05-01T10:30:00.123+02:00",
    "tag": [{"system": "http://example.org/tags", "code": "vip"}], "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Peter  Chalmers &amp; Co</p></div>"},
  "extension": [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race", "extension": [
    {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3", "display": "White"}},
    {"url": "text", "valueString": "White"}]}],
  "identifier": [
    {"use": "usual", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
     "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"},
    {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-99-9999"}
  ],
  "name": [
    {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
    {"use": "maiden", "family": "Carreño Quiñones", "given": ["Évelyn"], "prefix": ["Dr."]}
  ],
  "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work"}, {"system": "email", "value": "p@example.org"}],
  "gender": "male",
  "birthDate": "1974-12-25",
  "address": [{"use": "home", "line": ["534 Erewhon St"], "city": "PleasantVille", "district": "Rainbow", "state": "Vic", "postalCode": "3999"}]
}`

func TestExtractPatient(t *testing.T) {
	entries, err := Extract("Patient", []byte(patientJSON))
	if err != nil {
		t.Fatal(err)
	}
	str := func(param, value string) Entry {
		return Entry{Param: param, Type: String, Value: value, Text: Fold(value)}
	}
	tests := []struct {
		params []string
		want   []Entry
	}{
		{[]string{"family"}, []Entry{str("family", "Chalmers"), str("family", "Carreño Quiñones"),
			{Param: "family", Type: String, Text: "quinones"}}}, // a later word: starts-with only
		{[]string{"given"}, []Entry{str("given", "Peter"), str("given", "James"), str("given", "Évelyn")}},
		{[]string{"name"}, []Entry{
			{Param: "name", Type: String, Value: "Chalmers", Text: "chalmers"},
			{Param: "name", Type: String, Value: "Peter", Text: "peter"},
			{Param: "name", Type: String, Value: "James", Text: "james"},
			{Param: "name", Type: String, Value: "Peter James Chalmers", Text: "peter james chalmers"},
			{Param: "name", Type: String, Value: "Carreño Quiñones", Text: "carreno quinones"},
			{Param: "name", Type: String, Value: "Évelyn", Text: "evelyn"},
			{Param: "name", Type: String, Value: "Dr.", Text: "dr."},
			{Param: "name", Type: String, Text: "quinones"},
			{Param: "name", Type: String, Value: "Dr. Évelyn Carreño Quiñones", Text: "dr. evelyn carreno quinones"},
		}},
		{[]string{"phonetic"}, []Entry{
			{Param: "phonetic", Type: String, Value: "Chalmers", Text: "C456"},
			{Param: "phonetic", Type: String, Value: "Peter", Text: "P360"},
			{Param: "phonetic", Type: String, Value: "James", Text: "J520"},
			{Param: "phonetic", Type: String, Value: "Peter James Chalmers", Text: "P360 J520 C456"},
			{Param: "phonetic", Type: String, Value: "Carreño Quiñones", Text: "C650 Q552"},
			{Param: "phonetic", Type: String, Value: "Évelyn", Text: "E145"},
			{Param: "phonetic", Type: String, Value: "Dr.", Text: "D600"},
			{Param: "phonetic", Type: String, Text: "Q552"},
			{Param: "phonetic", Type: String, Value: "Dr. Évelyn Carreño Quiñones", Text: "D600 E145 C650 Q552"},
		}},
		{[]string{"birthdate"}, []Entry{{Param: "birthdate", Type: Date, Start: date("1974-12-25T00:00:00Z"), End: date("1974-12-26T00:00:00Z")}}},
		{[]string{"gender"}, []Entry{{Param: "gender", Type: Token, Code: "male"}}},
		{[]string{"identifier"}, []Entry{
			{Param: "identifier", Type: Token, System: "urn:oid:1.2.36.146.595.217.0.1", Code: "12345",
				Components: []Entry{{Param: "of-type", Type: Token, System: "http://terminology.hl7.org/CodeSystem/v2-0203", Code: "MR"}}},
			{Param: "identifier", Type: Token, System: "http://hl7.org/fhir/sid/us-ssn", Code: "999-99-9999"},
		}},
		{[]string{"address-city"}, []Entry{str("address-city", "PleasantVille")}},
		{[]string{"address"}, []Entry{
			str("address", "534 Erewhon St"), str("address", "PleasantVille"), str("address", "Rainbow"), str("address", "Vic"),
			str("address", "3999"), str("address", "534 Erewhon St PleasantVille Rainbow Vic 3999"),
		}},
		{[]string{"phone", "email", "telecom"}, []Entry{
			{Param: "email", Type: Token, Code: "p@example.org"},
			{Param: "phone", Type: Token, Code: "(03) 5555 6473"},
			{Param: "telecom", Type: Token, Code: "(03) 5555 6473"},
			{Param: "telecom", Type: Token, Code: "p@example.org"},
		}},
		{[]string{"deceased", "active"}, []Entry{{Param: "deceased", Type: Token, Code: "false"}}},
		{[]string{"race"}, []Entry{{Param: "race", Type: Token, Code: "2106-3"}}},
		{[]string{"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"}, []Entry{
			{Param: "_id", Type: Token, Code: "example"},
			{Param: "_lastUpdated", Type: Date, Start: date("2024-05-01T08:30:00.123Z"), End: date("2024-05-01T08:30:00.124Z")},
			{Param: "_profile", Type: URI, Value: "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"},
			{Param: "_tag", Type: Token, System: "http://example.org/tags", Code: "vip"},
		}},
		{[]string{"_text"}, []Entry{{Param: "_text", Type: String, Text: "peter chalmers & co"}}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.params, ","), func(t *testing.T) {
			if got := only(entries, tt.params...); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", render(got), render(tt.want))
			}
		})
	}
}

const observationJSON = `{
  "resourceType": "Observation",
  "id": "bp",
  "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}], "text": "Blood pressure"},
  "subject": {"reference": "https://kiln.example/fhir/Patient/example"},
  "encounter": {"reference": "Encounter/e1/_history/3"},
  "performer": [{"reference": "Practitioner/p1", "display": "Dr P"}, {"identifier": {"system": "http://npi", "value": "123"}}],
  "effectiveDateTime": "2013-01",
  "valueQuantity": {"value": 5.40, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
  "component": [
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}, {"system": "http://snomed.info/sct", "code": "271649006"}]},
     "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
     "valueQuantity": {"value": 60, "comparator": "<", "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
  ]
}`

func TestExtractObservation(t *testing.T) {
	r, err := New(WithBase("https://kiln.example/fhir/"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := r.Extract("Observation", []byte(observationJSON))
	if err != nil {
		t.Fatal(err)
	}
	january := []Entry{{Param: "date", Type: Date, Start: date("2013-01-01T00:00:00Z"), End: date("2013-02-01T00:00:00Z")}}
	sbp := Entry{Param: "component-code", Type: Token, System: "http://loinc.org", Code: "8480-6"}
	sbpSCT := Entry{Param: "component-code", Type: Token, System: "http://snomed.info/sct", Code: "271649006"}
	dbp := Entry{Param: "component-code", Type: Token, System: "http://loinc.org", Code: "8462-4"}
	sbpValue := Entry{Param: "component-value-quantity", Type: Quantity, Value: "107", Num: 107, Lo: 106.5, Hi: 107.5,
		System: "http://unitsofmeasure.org", Code: "mm[Hg]", Unit: "mmHg"}
	dbpValue := Entry{Param: "component-value-quantity", Type: Quantity, Value: "60", Num: 60, Lo: -MaxNumber, Hi: 60.5,
		System: "http://unitsofmeasure.org", Code: "mm[Hg]", Unit: "mmHg"}
	tests := []struct {
		params []string
		want   []Entry
	}{
		{[]string{"code"}, []Entry{
			{Param: "code", Type: Token, System: "http://loinc.org", Code: "85354-9", Text: "blood pressure panel"},
			{Param: "code", Type: Token, Text: "blood pressure"},
		}},
		{[]string{"category"}, []Entry{{Param: "category", Type: Token,
			System: "http://terminology.hl7.org/CodeSystem/observation-category", Code: "vital-signs", Text: "vital signs"}}},
		{[]string{"status"}, []Entry{{Param: "status", Type: Token, Code: "final"}}},
		{[]string{"date"}, january},
		// 5.40: three significant digits, [5.395, 5.405).
		{[]string{"value-quantity"}, []Entry{{Param: "value-quantity", Type: Quantity, Value: "5.40", Num: 5.4, Lo: 5.395, Hi: 5.405,
			System: "http://unitsofmeasure.org", Code: "mmol/L", Unit: "mmol/l"}}},
		// An absolute reference under the base is the relative one.
		{[]string{"subject", "patient"}, []Entry{
			{Param: "patient", Type: Reference, Ref: "Patient/example"},
			{Param: "subject", Type: Reference, Ref: "Patient/example"},
		}},
		{[]string{"encounter"}, []Entry{{Param: "encounter", Type: Reference, Ref: "Encounter/e1", Value: "3"}}},
		{[]string{"performer"}, []Entry{
			{Param: "performer", Type: Reference, Ref: "Practitioner/p1"},
			{Param: "performer", Type: Reference, System: "http://npi", Code: "123"},
		}},
		{[]string{"component-code-value-quantity"}, []Entry{
			{Param: "component-code-value-quantity", Type: Composite, Components: []Entry{sbp, sbpValue}},
			{Param: "component-code-value-quantity", Type: Composite, Components: []Entry{sbpSCT, sbpValue}},
			{Param: "component-code-value-quantity", Type: Composite, Components: []Entry{dbp, dbpValue}},
		}},
		{[]string{"component-code"}, []Entry{
			{Param: "component-code", Type: Token, System: "http://loinc.org", Code: "8480-6"},
			{Param: "component-code", Type: Token, System: "http://snomed.info/sct", Code: "271649006"},
			{Param: "component-code", Type: Token, System: "http://loinc.org", Code: "8462-4"},
		}},
		{[]string{"combo-code-value-quantity"}, []Entry{
			{Param: "combo-code-value-quantity", Type: Composite, Components: []Entry{
				{Param: "combo-code", Type: Token, System: "http://loinc.org", Code: "85354-9", Text: "blood pressure panel"},
				{Param: "combo-value-quantity", Type: Quantity, Value: "5.40", Num: 5.4, Lo: 5.395, Hi: 5.405,
					System: "http://unitsofmeasure.org", Code: "mmol/L", Unit: "mmol/l"}}},
			{Param: "combo-code-value-quantity", Type: Composite, Components: []Entry{
				{Param: "combo-code", Type: Token, Text: "blood pressure"},
				{Param: "combo-value-quantity", Type: Quantity, Value: "5.40", Num: 5.4, Lo: 5.395, Hi: 5.405,
					System: "http://unitsofmeasure.org", Code: "mmol/L", Unit: "mmol/l"}}},
			{Param: "combo-code-value-quantity", Type: Composite, Components: []Entry{
				{Param: "combo-code", Type: Token, System: "http://loinc.org", Code: "8480-6"}, withParam(sbpValue, "combo-value-quantity")}},
			{Param: "combo-code-value-quantity", Type: Composite, Components: []Entry{
				{Param: "combo-code", Type: Token, System: "http://snomed.info/sct", Code: "271649006"}, withParam(sbpValue, "combo-value-quantity")}},
			{Param: "combo-code-value-quantity", Type: Composite, Components: []Entry{
				{Param: "combo-code", Type: Token, System: "http://loinc.org", Code: "8462-4"}, withParam(dbpValue, "combo-value-quantity")}},
		}},
		{[]string{"value-concept", "value-string", "value-date"}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.params, ","), func(t *testing.T) {
			if got := only(entries, tt.params...); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", render(got), render(tt.want))
			}
		})
	}
	// Without the base, the absolute reference stays absolute.
	entries, _ = Extract("Observation", []byte(observationJSON))
	if got := only(entries, "subject"); len(got) != 1 || got[0].Ref != "https://kiln.example/fhir/Patient/example" {
		t.Errorf("subject without base: %s", render(got))
	}
}

func withParam(e Entry, param string) Entry { e.Param = param; return e }

func TestExtractOthers(t *testing.T) {
	tests := []struct {
		name, typ, body string
		params          []string
		want            []Entry
	}{
		{"MedicationRequest", "MedicationRequest", `{"resourceType": "MedicationRequest", "status": "active", "intent": "order",
			"medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "582620"}]},
			"subject": {"reference": "Patient/p1"}, "authoredOn": "2020-03-04T10:11:12-05:00",
			"dosageInstruction": [{"timing": {"event": ["2020-03-05", "2020-03-09T08:00:00Z"]}}]}`,
			[]string{"intent", "status", "authoredon", "code", "medication", "patient", "date"}, []Entry{
				{Param: "authoredon", Type: Date, Start: date("2020-03-04T15:11:12Z"), End: date("2020-03-04T15:11:13Z")},
				{Param: "code", Type: Token, System: "http://www.nlm.nih.gov/research/umls/rxnorm", Code: "582620"},
				// MedicationRequest.dosageInstruction.timing.event: each event.
				{Param: "date", Type: Date, Start: date("2020-03-05T00:00:00Z"), End: date("2020-03-06T00:00:00Z")},
				{Param: "date", Type: Date, Start: date("2020-03-09T08:00:00Z"), End: date("2020-03-09T08:00:01Z")},
				{Param: "intent", Type: Token, Code: "order"},
				{Param: "patient", Type: Reference, Ref: "Patient/p1"},
				{Param: "status", Type: Token, Code: "active"},
			}},
		{"Appointment", "Appointment", `{"resourceType": "Appointment", "status": "booked",
			"start": "2013-12-10T09:00:00Z", "end": "2013-12-10T11:00:00Z",
			"participant": [{"actor": {"reference": "Patient/example", "display": "Peter"}, "status": "accepted"},
			  {"actor": {"reference": "Practitioner/example"}, "status": "accepted"},
			  {"actor": {"reference": "Location/1"}, "status": "accepted"}]}`,
			[]string{"date", "status", "actor", "patient", "practitioner", "location"}, []Entry{
				{Param: "actor", Type: Reference, Ref: "Patient/example"},
				{Param: "actor", Type: Reference, Ref: "Practitioner/example"},
				{Param: "actor", Type: Reference, Ref: "Location/1"},
				{Param: "date", Type: Date, Start: date("2013-12-10T09:00:00Z"), End: date("2013-12-10T09:00:01Z")},
				{Param: "location", Type: Reference, Ref: "Location/1"},
				{Param: "patient", Type: Reference, Ref: "Patient/example"},
				{Param: "practitioner", Type: Reference, Ref: "Practitioner/example"},
				{Param: "status", Type: Token, Code: "booked"},
			}},
		{"Encounter period", "Encounter", `{"resourceType": "Encounter", "status": "finished",
			"class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
			"subject": {"reference": "Patient/p1"},
			"period": {"start": "2015-01-17T16:00:00+10:00", "end": "2015-01-17"}}`,
			[]string{"date", "class", "length"}, []Entry{
				{Param: "class", Type: Token, System: "http://terminology.hl7.org/CodeSystem/v3-ActCode", Code: "AMB"},
				// The end date's whole day is in the period.
				{Param: "date", Type: Date, Start: date("2015-01-17T06:00:00Z"), End: date("2015-01-18T00:00:00Z")},
			}},
		{"Timing", "ServiceRequest", `{"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/p"},
			"occurrenceTiming": {"event": ["2020-03-05", "2020-03-09T08:00:00Z"], "repeat": {"boundsPeriod": {"start": "2020-03-01", "end": "2020-03-07"}}}}`,
			// A Timing: only its outer limits count.
			[]string{"occurrence"}, []Entry{{Param: "occurrence", Type: Date, Start: date("2020-03-01T00:00:00Z"), End: date("2020-03-09T08:00:01Z")}}},
		{"open Period", "Encounter", `{"resourceType": "Encounter", "status": "in-progress", "class": {"code": "AMB"},
			"period": {"start": "2015-01-21"}}`,
			[]string{"date"}, []Entry{{Param: "date", Type: Date, Start: date("2015-01-21T00:00:00Z"), End: MaxTime}}},
		{"number", "RiskAssessment", `{"resourceType": "RiskAssessment", "status": "final", "subject": {"reference": "Patient/p"},
			"prediction": [{"probabilityDecimal": 0.8}, {"probabilityRange": {"low": {"value": 1}, "high": {"value": 5.5}}}]}`,
			[]string{"probability"}, []Entry{
				{Param: "probability", Type: Number, Value: "0.8", Num: 0.8, Lo: 0.75, Hi: 0.85},
				{Param: "probability", Type: Number, Lo: 1, Hi: 5.5},
			}},
		{"Money and canonical", "Invoice", `{"resourceType": "Invoice", "status": "issued", "date": "2017-01-25T08:00:00+01:00",
			"totalGross": {"value": 48, "currency": "EUR"}, "subject": {"reference": "Patient/example"},
			"account": {"reference": "Account/example"}}`,
			[]string{"totalgross", "date", "subject", "patient", "account", "status"}, []Entry{
				{Param: "account", Type: Reference, Ref: "Account/example"},
				{Param: "date", Type: Date, Start: date("2017-01-25T07:00:00Z"), End: date("2017-01-25T07:00:01Z")},
				{Param: "patient", Type: Reference, Ref: "Patient/example"},
				{Param: "status", Type: Token, Code: "issued"},
				{Param: "subject", Type: Reference, Ref: "Patient/example"},
				{Param: "totalgross", Type: Quantity, Value: "48", Num: 48, Lo: 47.5, Hi: 48.5, System: iso4217, Code: "EUR"},
			}},
		{"contained and canonical", "MedicationRequest", `{"resourceType": "MedicationRequest", "status": "active", "intent": "order",
			"contained": [{"resourceType": "Medication", "id": "med1"}],
			"medicationReference": {"reference": "#med1"}, "subject": {"reference": "Group/g1"},
			"instantiatesCanonical": ["http://example.org/PlanDefinition/p|2.0"]}`,
			[]string{"medication", "patient", "subject", "intended-performer"}, []Entry{
				{Param: "medication", Type: Reference, Ref: "#med1"},
				{Param: "subject", Type: Reference, Ref: "Group/g1"},
			}},
		{"near", "Location", `{"resourceType": "Location", "name": "Bureau", "position": {"longitude": -83.6945691, "latitude": 42.25475478}}`,
			[]string{"near", "name"}, []Entry{
				{Param: "name", Type: String, Value: "Bureau", Text: "bureau"},
				{Param: "near", Type: Special, Components: []Entry{
					{Param: "latitude", Type: Number, Value: "42.25475478", Num: 42.25475478, Lo: 42.254754775, Hi: 42.254754785},
					{Param: "longitude", Type: Number, Value: "-83.6945691", Num: -83.6945691, Lo: -83.69456915, Hi: -83.69456905},
				}},
			}},
		{"Bundle composition", "Bundle", `{"resourceType": "Bundle", "type": "document", "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"},
			"entry": [{"resource": {"resourceType": "Composition", "id": "c1"}}]}`,
			[]string{"composition", "identifier", "type"}, []Entry{
				{Param: "composition", Type: Reference, Ref: "Composition/c1"},
				{Param: "identifier", Type: Token, System: "urn:ietf:rfc:3986", Code: "urn:uuid:1"},
				{Param: "type", Type: Token, Code: "document"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := Extract(tt.typ, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got := only(entries, tt.params...); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", render(got), render(tt.want))
			}
		})
	}
}

func TestExtractErrors(t *testing.T) {
	for _, tt := range []struct{ typ, body string }{
		{"Patient", `{"resourceType": "Observation"}`},
		{"Patient", `{"resourceType": "Patient"`},
		{"Patient", `[]`},
		{"NotAType", `{"resourceType": "NotAType"}`},
	} {
		if _, err := Extract(tt.typ, []byte(tt.body)); err == nil {
			t.Errorf("Extract(%s, %s): no error", tt.typ, tt.body)
		}
	}
	// Values of the wrong shape are skipped, never a failure.
	entries, err := Extract("Patient", []byte(`{"resourceType": "Patient", "birthDate": "next week", "name": [{"family": 5}],
		"identifier": [{"value": ""}], "gender": "", "address": [{"city": ["x"]}], "managingOrganization": {"display": "x"}}`))
	if got := only(entries, "birthdate", "family", "name", "identifier", "gender", "organization"); err != nil || len(got) != 0 {
		t.Errorf("odd values: %v, %s", err, render(got))
	}
}

// A Group of many members is indexed in linear time, repeats removed.
func TestExtractMany(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"resourceType": "Group", "type": "person", "actual": true, "member": [`)
	const n = 20000
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"entity": {"reference": "Patient/%d"}}`, i%(n/2))
	}
	b.WriteString(`]}`)
	start := time.Now()
	entries, err := Extract("Group", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(only(entries, "member")); got != n/2 {
		t.Errorf("%d member entries, want %d", got, n/2)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("%d members took %v", n, d)
	}
}

func TestDateRange(t *testing.T) {
	utc := time.UTC
	sydney := time.FixedZone("AEST", 10*3600)
	tests := []struct {
		in         string
		loc        *time.Location
		start, end string
	}{
		{"2013", utc, "2013-01-01T00:00:00Z", "2014-01-01T00:00:00Z"},
		{"2013-01", utc, "2013-01-01T00:00:00Z", "2013-02-01T00:00:00Z"},
		{"2012-02", utc, "2012-02-01T00:00:00Z", "2012-03-01T00:00:00Z"},
		{"2013-01-14", utc, "2013-01-14T00:00:00Z", "2013-01-15T00:00:00Z"},
		{"2013-01-14", sydney, "2013-01-13T14:00:00Z", "2013-01-14T14:00:00Z"},
		{"2013-01-14T10:00", utc, "2013-01-14T10:00:00Z", "2013-01-14T10:01:00Z"},
		{"2013-01-14T10:00:00Z", sydney, "2013-01-14T10:00:00Z", "2013-01-14T10:00:01Z"},
		{"2013-01-14T10:00:00+01:00", utc, "2013-01-14T09:00:00Z", "2013-01-14T09:00:01Z"},
		{"2013-01-14T10:00:00-05:30", utc, "2013-01-14T15:30:00Z", "2013-01-14T15:30:01Z"},
		{"2013-01-14T10:00:00.5Z", utc, "2013-01-14T10:00:00.5Z", "2013-01-14T10:00:00.6Z"},
		{"2013-01-14T10:00:00.123Z", utc, "2013-01-14T10:00:00.123Z", "2013-01-14T10:00:00.124Z"},
		// finer than a millisecond: widened to whole milliseconds
		{"2013-01-14T10:00:00.1234Z", utc, "2013-01-14T10:00:00.123Z", "2013-01-14T10:00:00.124Z"},
		{"2013-01-14T10:00:00", utc, "2013-01-14T10:00:00Z", "2013-01-14T10:00:01Z"},
		{"0001-01-01", sydney, "0001-01-01T00:00:00Z", "0001-01-01T14:00:00Z"},
		{"9999", utc, "9999-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"},
	}
	for _, tt := range tests {
		start, end, ok := dateRange(tt.in, tt.loc)
		if !ok || !start.Equal(date(tt.start)) || !end.Equal(date(tt.end)) {
			t.Errorf("dateRange(%q) = %v, %v, %v; want %s, %s", tt.in, start, end, ok, tt.start, tt.end)
		}
	}
	for _, bad := range []string{"", "201", "2013-13", "2013-00", "2013-02-30", "2013-1-1", "2013/01", "2013-01-14T", "2013-01-14T25:00",
		"2013-01-14T10", "2013-01-14T10:00:00.Z", "2013-01-14T10:00:00+1", "2013-01-14T10:00:00+15:00", "23 May 2009", "10:00:00", "2013-01-14 10:00"} {
		if s, e, ok := dateRange(bad, utc); ok {
			t.Errorf("dateRange(%q) = %v, %v", bad, s, e)
		}
	}
}

func TestNumberRange(t *testing.T) {
	tests := []struct {
		in        string
		v, lo, hi float64
	}{
		{"5.40", 5.4, 5.395, 5.405},
		{"5.4", 5.4, 5.35, 5.45},
		{"100", 100, 99.5, 100.5},
		{"100.00", 100, 99.995, 100.005},
		{"1.5e2", 150, 145, 155},
		{"1e2", 100, 50, 150},
		{"-0.8", -0.8, -0.85, -0.75},
		{"0", 0, -0.5, 0.5},
		{"86.71478829270926", 86.71478829270926, 86.714788292709255, 86.714788292709265},
		{"-86.71478829270920", -86.7147882927092, -86.714788292709205, -86.714788292709195},
		{"1000000000000000.0", 1e15, 999999999999999.95, 1000000000000000.05},
		{"0.0000000000000000", 0, -0.00000000000000005, 0.00000000000000005},
		{"12345678901234567890", 12345678901234567890, 12345678901234567889.5, 12345678901234567890.5},
	}
	for _, tt := range tests {
		v, lo, hi, ok := numberRange(tt.in)
		if !ok || v != tt.v || lo != tt.lo || hi != tt.hi {
			t.Errorf("numberRange(%q) = %v [%v, %v) %v; want %v [%v, %v)", tt.in, v, lo, hi, ok, tt.v, tt.lo, tt.hi)
		}
	}
	for _, bad := range []string{"", "x", "1e999999999", "1e-999999", "--1"} {
		if _, _, _, ok := numberRange(bad); ok {
			t.Errorf("numberRange(%q): ok", bad)
		}
	}
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"Évelyn":               "evelyn",
		"  ÅSTRÖM   Carreño  ": "astrom carreno",
		"Straße":               "strasse",
		"Øre Łódź":             "ore lodz",
		"ÆSIR":                 "aesir",
		"Peter\tJames":         "peter james",
		"İstanbul":             "istanbul",
		"Ωmega":                "ωmega",
		"O'Brien-Smith":        "o'brien-smith",
		"":                     "",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"Robert": "R163", "Rupert": "R163", "Rubin": "R150", "Ashcraft": "A261", "Ashcroft": "A261",
		"Tymczak": "T522", "Pfister": "P236", "Smith Smyth": "S530 S530", "": "", "123": "",
	} {
		if got := Phonetic(in); got != want {
			t.Errorf("Phonetic(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkExtract runs Extract over the Synthea resources, the mix a
// write path sees.
func BenchmarkExtract(b *testing.B) {
	all, err := synthea.Entries(filepath.Join("..", "..", "testdata", "synthea"))
	if err != nil {
		b.Fatal(err)
	}
	r := Default()
	b.Run("Extract", func(b *testing.B) {
		n := 0
		for b.Loop() {
			x := all[n%len(all)]
			n++
			if _, err := r.Extract(x.Type, x.Resource); err != nil {
				b.Fatal(err)
			}
		}
	})
	// ExtractValue: the extraction alone, without decoding.
	decoded := make([]map[string]any, len(all))
	for i, x := range all {
		d := json.NewDecoder(bytes.NewReader(x.Resource))
		d.UseNumber()
		if err := d.Decode(&decoded[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("ExtractValue", func(b *testing.B) {
		n := 0
		for b.Loop() {
			i := n % len(all)
			n++
			if _, err := r.ExtractValue(all[i].Type, decoded[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzExtract: no body makes Extract panic.
func FuzzExtract(f *testing.F) {
	f.Add(patientJSON)
	f.Add(observationJSON)
	f.Add(`{"resourceType": "Encounter", "period": {"start": "2015-01-17T16:00:00+10:00", "end": 5}}`)
	f.Add(`{"resourceType": "Location", "position": {"latitude": 1e400, "longitude": "x"}}`)
	f.Add(`{"resourceType": "RiskAssessment", "prediction": [{"probabilityRange": {"low": {"value": 1}, "high": 2}}]}`)
	r := Default()
	f.Fuzz(func(t *testing.T, body string) {
		var h struct{ ResourceType any }
		json.Unmarshal([]byte(body), &h)
		typ, _ := h.ResourceType.(string)
		r.Extract(typ, []byte(body))
	})
}

// TestExtractParams: the entries of the named parameters are exactly
// those Extract computes for them, on every official example.
func TestExtractParams(t *testing.T) {
	files, err := filepath.Glob("../../testdata/examples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	r := Default()
	compared := 0
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var head struct{ ResourceType string }
		json.Unmarshal(body, &head)
		all, err := r.Extract(head.ResourceType, body)
		if err != nil {
			continue // the few examples Extract refuses are tested elsewhere
		}
		names := []string{"patient", "subject", "category", "_id", "no-such-param", "subject"}
		got, err := r.ExtractParams(head.ResourceType, body, "", names)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		var want []Entry
		for _, name := range names[:4] {
			for _, e := range all {
				if e.Param == name {
					want = append(want, e)
				}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: ExtractParams %v, Extract %v", filepath.Base(f), got, want)
		}
		if len(want) > 0 {
			compared++
		}
	}
	if compared < 100 {
		t.Errorf("only %d examples had entries to compare", compared)
	}
}
