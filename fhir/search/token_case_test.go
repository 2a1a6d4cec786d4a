package search

import (
	"net/url"
	"reflect"
	"testing"
)

// TestTokenCase: search.html#token, "when in doubt, servers SHOULD match
// case-insensitively" (B-TOK-03). A code bound to an enumerated ValueSet
// gets the ValueSet's code that equals the value but for case as one more
// alternative; identifiers, Codings and unbound codes are left exact.
func TestTokenCase(t *testing.T) {
	for _, tc := range []struct {
		name, typ, query string
		want             []Value
	}{
		{"upper case gender", "Patient", "gender=FEMALE",
			[]Value{code("FEMALE"), {Raw: "FEMALE", Code: "female"}}},
		{"mixed case, two values", "Patient", "gender=Male,OTHER",
			[]Value{code("Male"), code("OTHER"), {Raw: "Male", Code: "male"}, {Raw: "OTHER", Code: "other"}}},
		{"the code as written: nothing added", "Patient", "gender=female",
			[]Value{code("female")}},
		{"hyphenated code", "Observation", "status=Entered-In-Error",
			[]Value{code("Entered-In-Error"), {Raw: "Entered-In-Error", Code: "entered-in-error"}}},
		{"|code keeps its no-system form", "Patient", "gender=|FEMALE",
			[]Value{sysCode("|FEMALE", "", "FEMALE"), {Raw: "|FEMALE", Code: "female", HasSystem: true}}},
		{"with a system: exact", "Patient", "gender=http://hl7.org/fhir/administrative-gender|FEMALE",
			[]Value{sysCode("http://hl7.org/fhir/administrative-gender|FEMALE", "http://hl7.org/fhir/administrative-gender", "FEMALE")}},
		{"not a code of the ValueSet", "Patient", "gender=FEMALES", []Value{code("FEMALES")}},
		{"identifier stays exact", "Patient", "identifier=ABC", []Value{code("ABC")}},
		{"CodeableConcept stays exact", "Observation", "code=ABC", []Value{code("ABC")}},
		{"unbound code stays exact", "Patient", "language=EN", []Value{code("EN")}},
		{":not excludes every case", "Patient", "gender:not=MALE",
			[]Value{code("MALE"), {Raw: "MALE", Code: "male"}}},
		{":text is not a code match", "Patient", "gender:text=FEMALE",
			[]Value{{Raw: "FEMALE", Text: Fold("FEMALE")}}},
		{"in a chain", "Observation", "subject:Patient.gender=FEMALE", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			params, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			q, _, err := Parse([]string{tc.typ}, params, ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(q.Filter) != 1 {
				t.Fatalf("%d clauses", len(q.Filter))
			}
			got := q.Filter[0].Values
			if c := q.Filter[0].Chain; c != nil {
				got, tc.want = c.Filter.Values, []Value{code("FEMALE"), {Raw: "FEMALE", Code: "female"}}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s:\n got %+v\nwant %+v", tc.query, got, tc.want)
			}
		})
	}

}
