package resource

import (
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/defs"
	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// is is the part of an issue a test pins down: its code and expression
// ("" for none).
type is struct{ code, expr string }

func TestParseRejects(t *testing.T) {
	const (
		structure = outcome.CodeStructure
		value     = outcome.CodeValue
	)
	deep := func(open, close string, n int) string {
		return `{"resourceType":"Patient","extension":[` + strings.Repeat(open, n) + strings.Repeat(close, n) + `]}`
	}
	tests := []struct {
		name string
		body string
		want []is
		diag string // in the first issue's diagnostics
	}{
		{"malformed JSON", `{"resourceType":"Patient",`, []is{{structure, ""}}, "malformed JSON"},
		{"trailing garbage", `{"resourceType":"Patient"} x`, []is{{structure, ""}}, "malformed JSON"},
		{"two objects", `{"resourceType":"Patient"}{}`, []is{{structure, ""}}, "malformed JSON"},
		{"empty body", ``, []is{{structure, ""}}, "empty body"},
		{"blank body", " \r\n\t", []is{{structure, ""}}, "empty body"},
		{"array", `[{"resourceType":"Patient"}]`, []is{{structure, ""}}, "not a JSON object"},
		{"number", `42`, []is{{structure, ""}}, "not a JSON object"},
		{"string", `"Patient"`, []is{{structure, ""}}, "not a JSON object"},
		{"null body", `null`, []is{{structure, ""}}, "not a JSON object"},
		{"true body", `true`, []is{{structure, ""}}, "not a JSON object"},
		{"unknown element", `{"resourceType":"Patient","foo":1}`, []is{{structure, "Patient.foo"}}, `unknown field: "foo"`},
		{"unknown nested element", `{"resourceType":"Patient","name":[{"family":"x","foo":1}]}`,
			[]is{{structure, "Patient.name[0].foo"}}, ""},
		{"invalid date", `{"resourceType":"Patient","birthDate":"1974-13-25"}`, []is{{value, "Patient.birthDate"}}, "1974-13-25"},
		{"invalid code", `{"resourceType":"Patient","gender":"mal"}`, []is{{value, "Patient.gender"}}, `"mal"`},
		{"invalid id", `{"resourceType":"Patient","id":"a b"}`, []is{{value, "Patient.id"}}, ""},
		{"wrong reference target", `{"resourceType":"Patient","managingOrganization":{"reference":"Patient/1"}}`,
			[]is{{value, "Patient.managingOrganization"}}, "invalid reference to a Patient resource, want Organization"},
		{"wrong type", `{"resourceType":"Patient","active":"yes"}`, []is{{value, "Patient.active"}}, "expected boolean"},
		{"object for array", `{"resourceType":"Patient","name":{"family":"x"}}`, []is{{value, "Patient.name"}}, "expected array"},
		{"array for string", `{"resourceType":"Patient","name":[{"family":["x"]}]}`, []is{{structure, "Patient.name[0].family"}}, ""},
		{"number for string", `{"resourceType":"Patient","name":[{"given":[1]}]}`, []is{{value, "Patient.name[0].given[0]"}}, ""},
		{"invalid UTF-8", "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\xff\"}]}", []is{{value, "Patient.name[0].family"}}, "UTF-8"},
		{"two choices", `{"resourceType":"Patient","multipleBirthBoolean":true,"multipleBirthInteger":2}`, []is{{value, "Patient"}}, ""},
		{"duplicate keys", `{"resourceType":"Patient","active":true,"active":false}`,
			[]is{{structure, "Patient.active"}}, `duplicate property "active"`},
		{"duplicate nested keys", `{"resourceType":"Patient","name":[{"family":"a"},{"family":"b","family":"c"}]}`,
			[]is{{structure, "Patient.name[1].family"}}, `duplicate property "family"`},
		{"duplicate escaped key", `{"resourceType":"Patient","active":true,"\u0061ctive":false}`,
			[]is{{structure, "Patient.active"}}, `duplicate property "active"`},
		{"null property", `{"resourceType":"Patient","active":null}`, []is{{structure, "Patient.active"}}, "null"},
		{"null nested property", `{"resourceType":"Patient","name":[{"family":null}]}`, []is{{structure, "Patient.name[0].family"}}, "null"},
		{"null complex in array", `{"resourceType":"Patient","name":[null]}`, []is{{structure, "Patient.name[0]"}}, ""},
		{"UpperCamel key", `{"resourceType":"Patient","Active":true}`, []is{{structure, "Patient.Active"}}, `unknown element "Active"`},
		{"UpperCamel key, bad value", `{"resourceType":"Patient","BirthDate":"x"}`,
			[]is{{structure, "Patient.BirthDate"}}, `unknown element "BirthDate"`},
		{"snake_case key", `{"resourceType":"Patient","birth_date":"1970"}`, []is{{structure, "Patient.birth_date"}}, ""},
		{"missing resourceType", `{"active":true}`, []is{{structure, ""}}, `missing required field "resourceType"`},
		{"resourceType not a string", `{"resourceType":1}`, []is{{structure, ""}}, "invalid resource type"},
		{"unknown resourceType", `{"resourceType":"Foo","active":true}`, []is{{outcome.CodeNotSupported, ""}}, `unknown resource type: "Foo"`},
		{"lower-case resourceType", `{"resourceType":"patient"}`, []is{{outcome.CodeNotSupported, ""}}, ""},
		{"unknown contained resourceType", `{"resourceType":"Patient","contained":[{"resourceType":"Foo"}]}`,
			[]is{{outcome.CodeNotSupported, "Patient.contained[0]"}}, ""},
		{"missing mandatory elements", `{"resourceType":"Observation"}`,
			[]is{{outcome.CodeRequired, "Observation.code"}, {outcome.CodeRequired, "Observation.status"}}, ""},
		{"missing mandatory camelCase element", `{"resourceType":"Goal","subject":{"reference":"Patient/1"},"description":{"text":"x"}}`,
			[]is{{outcome.CodeRequired, "Goal.lifecycleStatus"}}, ""},
		{"error in contained resource", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","foo":1}]}`,
			[]is{{structure, "Patient.contained[0].foo"}}, ""},
		{"errors in a Bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","foo":1,"active":null}}]}`,
			[]is{{structure, "Bundle.entry[0].resource.active"}, {structure, "Bundle.entry[0].resource.foo"}}, ""},
		{"all issues: two bad fields", `{"resourceType":"Patient","birthDate":"1974-13-25","gender":"mal"}`,
			[]is{{value, "Patient.birthDate"}, {value, "Patient.gender"}}, ""},
		{"all issues: shape and content together",
			`{"resourceType":"Patient","active":true,"active":true,"Deceased":null,"birthDate":"x","gender":"mal","foo":1}`,
			[]is{{structure, "Patient.Deceased"}, {structure, "Patient.Deceased"}, {structure, "Patient.active"}, {value, "Patient.birthDate"},
				{structure, "Patient.foo"}, {value, "Patient.gender"}}, ""},
		{"nesting beyond google/fhir's 64 elements",
			`{"resourceType":"Patient","managingOrganization":` + strings.Repeat(`{"identifier":{"assigner":`, 40) + `{}` + strings.Repeat(`}}`, 40) + `}`,
			[]is{{value, "Patient.managingOrganization" + strings.Repeat(".identifier.assigner", 32)}}, "maximum nesting depth 64"},
		{"nesting beyond 128 levels", deep(`[`, `]`, 200), []is{{structure, "Patient.extension" + strings.Repeat("[0]", 127)}}, "deeper than 128"},
		// encoding/json stops at 10,000 levels, before checkShape's walk.
		{"hostile nesting: 10,000 objects", deep(`{"extension":[`, `]}`, 5000), []is{{structure, ""}}, "exceeded max depth"},
		{"hostile nesting: 10,000 arrays", deep(`[`, `]`, 10000), []is{{structure, ""}}, "exceeded max depth"},
		{"hostile nesting: 1,000,000 arrays", deep(`[`, `]`, 1000000), []is{{structure, ""}}, "exceeded max depth"},
		{"hostile nesting under the JSON limit", `{"resourceType":"Patient","a":` + strings.Repeat(`{"a":`, 9990) + `1` + strings.Repeat(`}`, 9991),
			[]is{{structure, "Patient" + strings.Repeat(".a", 128)}}, "deeper than 128"},
		// json.html#primitive allows nulls in an array of primitives when
		// _given carries what the null stands for, but google/fhir v0.7.4
		// rejects any null in an array. A known limitation: no official
		// example uses it. If google/fhir starts to accept it, turn this
		// case into an acceptance test.
		{"google/fhir limitation: null in a primitive array", `{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"id":"x"}]}]}`,
			[]is{{value, "Patient.name[0]._given[0]"}, {value, "Patient.name[0].given[1]"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse([]byte(tt.body))
			if d := time.Since(start); d > time.Second {
				t.Errorf("Parse took %v", d)
			}
			var oe *outcome.Error
			if !errors.As(err, &oe) {
				t.Fatalf("Parse = %v, want *outcome.Error", err)
			}
			if oe.Status != http.StatusBadRequest {
				t.Errorf("status %d, want 400", oe.Status)
			}
			var got []is
			for _, i := range oe.Issues {
				if i.Severity != outcome.SevError {
					t.Errorf("severity %q, want error", i.Severity)
				}
				if len(i.Expression) > 1 {
					t.Errorf("%d expressions, want at most one", len(i.Expression))
				}
				got = append(got, is{i.Code, strings.Join(i.Expression, ",")})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("issues\n got %v\nwant %v\n(%v)", got, tt.want, err)
			}
			if len(oe.Issues) > 0 && !strings.Contains(oe.Issues[0].Diagnostics, tt.diag) {
				t.Errorf("diagnostics %q do not mention %q", oe.Issues[0].Diagnostics, tt.diag)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	for _, body := range []string{
		`{"resourceType":"Patient"}`,
		" \n{\"resourceType\" : \"Patient\" , \"id\" : \"p1\"}\n",
		`{"resourceType":"Patient","name":[]}`,
		`{"resourceType":"Patient","active":true,"_active":{"id":"a1"}}`,
		`{"resourceType":"Patient","_birthDate":{"extension":[{"url":"http://x","valueString":"unknown"}]}}`,
		`{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","name":"x"}],"managingOrganization":{"reference":"#o"}}`,
		`{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">null, \"a\":null</div>"}}`,
	} {
		if _, err := Parse([]byte(body)); err != nil {
			t.Errorf("Parse(%s): %v", body, err)
		}
	}
}

func TestStamp(t *testing.T) {
	body := `{"resourceType":"Bundle","id":"b","meta":{"versionId":"9","lastUpdated":"2001-01-01T00:00:00Z","tag":[{"code":"t"}]},
		"type":"collection","timestamp":"2024-01-02T03:04:05+00:00","entry":[{"fullUrl":"urn:uuid:1","resource":{
		"resourceType":"Patient","id":"p","contained":[{"resourceType":"Organization","id":"o","name":"Acme"}],
		"managingOrganization":{"reference":"#o"},"birthDate":"1970","_birthDate":{"extension":[{"url":"http://x","valueDateTime":"1970-01-01T10:00:00-05:00"}]}}}]}`
	r, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != "Bundle" || r.ID != "b" {
		t.Errorf("Type %q ID %q", r.Type, r.ID)
	}
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("x", 3600))
	want := `{"resourceType":"Bundle","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient",` +
		`"_birthDate":{"extension":[{"url":"http://x","valueDateTime":"1970-01-01T10:00:00-05:00"}]},"birthDate":"1970",` +
		`"contained":[{"resourceType":"Organization","id":"o","name":"Acme"}],"id":"p","managingOrganization":{"reference":"#o"}}}],` +
		`"id":"new","meta":{"lastUpdated":"2024-05-06T06:08:09.000000Z","tag":[{"code":"t"}],"versionId":"2"},` +
		`"timestamp":"2024-01-02T03:04:05+00:00","type":"collection"}`
	for i := 0; i < 3; i++ { // a Resource can be stamped again
		out, err := r.Stamp("new", 2, at)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != want {
			t.Errorf("stamp %d:\n got %s\nwant %s", i, out, want)
		}
		if r.ID != "new" {
			t.Errorf("ID = %q after Stamp", r.ID)
		}
	}
}

// A primitive that has only extensions, and base64 with line breaks, are
// where google/fhir's marshaller changes the message it marshals.
func TestStampAgain(t *testing.T) {
	for _, body := range []string{
		`{"resourceType":"Patient","_birthDate":{"extension":[{"url":"http://x","valueString":"unknown"}]}}`,
		`{"resourceType":"Binary","contentType":"text/plain","data":"aGVs bG8g d29y bGQ="}`,
	} {
		r, err := Parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		first, err := r.Stamp("a", 1, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		second, err := r.Stamp("a", 1, time.Unix(0, 0))
		if err != nil || string(second) != string(first) {
			t.Errorf("second Stamp = %s, %v; first was %s", second, err, first)
		}
	}
}

func TestResourceTypeFirst(t *testing.T) {
	for in, want := range map[string]string{
		`{"resourceType":"A"}`:                                                                      `{"resourceType":"A"}`,
		`{"a":1,"resourceType":"A"}`:                                                                `{"resourceType":"A","a":1}`,
		`{"a":1,"b":[2],"resourceType":"A","z":{}}`:                                                 `{"resourceType":"A","a":1,"b":[2],"z":{}}`,
		`{"a":"\"resourceType\":\"X\"","resourceType":"A"}`:                                         `{"resourceType":"A","a":"\"resourceType\":\"X\""}`,
		`{"a":"resourceType","b":["resourceType"],"resourceType":"A"}`:                              `{"resourceType":"A","a":"resourceType","b":["resourceType"]}`,
		`{"c":[{"id":"1","resourceType":"B"},{"resourceType":"C"}],"resourceType":"A"}`:             `{"resourceType":"A","c":[{"resourceType":"B","id":"1"},{"resourceType":"C"}]}`,
		`{"e":[{"r":{"c":[{"x":"}","resourceType":"C"}],"resourceType":"B"}}],"resourceType":"A"}`:  `{"resourceType":"A","e":[{"r":{"resourceType":"B","c":[{"resourceType":"C","x":"}"}]}}]}`,
		`{"a":{},"resourceType":"AVeryLongResourceTypeNameThatDoesNotFitInSixtyFourBytesOfBuffer"}`: `{"resourceType":"AVeryLongResourceTypeNameThatDoesNotFitInSixtyFourBytesOfBuffer","a":{}}`,
	} {
		b := []byte(in)
		resourceTypeFirst(b)
		if string(b) != want {
			t.Errorf("resourceTypeFirst(%s) = %s, want %s", in, b, want)
		}
	}
}

// The types google/fhir parses are the ones the definitions describe, so
// Summary and Elements know every resource Parse accepts.
func TestTypes(t *testing.T) {
	if got, want := Types(), defs.Types(); !reflect.DeepEqual(got, want) {
		t.Errorf("Types() = %d types, conformance/defs has %d", len(got), len(want))
	}
	if !IsType("Patient") || !IsType("Bundle") || IsType("patient") || IsType("Resource") || IsType("SubscriptionStatus") {
		t.Error("IsType is wrong")
	}
}

// A body with very many bad properties is answered quickly, with a
// bounded list of issues.
func TestParseHostileWidth(t *testing.T) {
	for name, prop := range map[string]func(int) string{
		"unknown":   func(i int) string { return `"k` + strconv.Itoa(i) + `":1` },
		"duplicate": func(int) string { return `"active":true` },
		"null":      func(i int) string { return `"k` + strconv.Itoa(i) + `":null` },
	} {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString(`{"resourceType":"Patient"`)
			for i := 0; i < 100000; i++ {
				b.WriteString("," + prop(i))
			}
			b.WriteString("}")
			start := time.Now()
			_, err := Parse([]byte(b.String()))
			// Linear work takes well under a second; a quadratic walk of
			// 100,000 properties takes minutes. 20 s leaves room for a
			// machine busy with other test packages.
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("Parse took %v", d)
			}
			var oe *outcome.Error
			if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest {
				t.Fatalf("Parse = %v, want a 400", err)
			}
			if n := len(oe.Issues); n != maxIssues+1 || oe.Issues[n-1].Code != outcome.CodeInformation ||
				!strings.HasSuffix(oe.Issues[n-1].Diagnostics, "more issues not listed") {
				t.Errorf("%d issues, the last %+v; want %d and a note", n, oe.Issues[n-1], maxIssues+1)
			}
		})
	}
}

// TestParseEmptyStrings: "" is no value (ele-1), so a body holding one is
// refused, each empty value named. google/fhir alone dropped an empty
// code silently and stored a resource without it (found by FuzzParse:
// an Observation with "status":"" was stored without its required status).
func TestParseEmptyStrings(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"resourceType":"Observation","status":"","code":{"text":"x"}}`, "Observation.status"},
		{`{"resourceType":"Observation","status":"final","code":{"text":""}}`, "Observation.code.text"},
		{`{"resourceType":"Patient","name":[{"given":["a",""]}]}`, "Patient.name[0].given[1]"},
		{`{"resourceType":"Patient","extension":[{"url":"","valueString":"x"}]}`, "Patient.extension[0].url"},
	} {
		_, err := Parse([]byte(tc.body))
		var oe *outcome.Error
		if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest {
			t.Errorf("Parse(%s) = %v, want a 400", tc.body, err)
			continue
		}
		found := false
		for _, is := range oe.Issues {
			if slices.Contains(is.Expression, tc.want) && strings.Contains(is.Diagnostics, "empty string") {
				found = true
			}
		}
		if !found {
			t.Errorf("Parse(%s): issues %+v, want an empty-string issue at %s", tc.body, oe.Issues, tc.want)
		}
	}
	if _, err := Parse([]byte(`{"resourceType":"Patient","name":[{"text":" "}]}`)); err != nil {
		t.Errorf("a string of one space is a value: %v", err)
	}
}
