package rest

import (
	"fmt"
	"strings"
	"testing"
)

// TestFHIRPathPatch applies single operations (fhirpatch.html) to one
// Patient and compares the whole result.
func TestFHIRPathPatch(t *testing.T) {
	const start = `{"resourceType":"Patient","id":"p","active":false,"name":[{"family":"F","given":["A","B"]}],` +
		`"identifier":[{"system":"a","value":"1"},{"system":"b","value":"2"}]}`
	part := func(name, kv string) string { return fmt.Sprintf(`{"name":%q,%s}`, name, kv) }
	op := func(parts ...string) string {
		return `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[` + strings.Join(parts, ",") + `]}]}`
	}
	typ := func(t string) string { return part("type", fmt.Sprintf(`"valueCode":%q`, t)) }
	path := func(p string) string { return part("path", fmt.Sprintf(`"valueString":%q`, p)) }
	for _, tc := range []struct {
		name, patch, want string // want "" : the patch fails
	}{
		{"add a single element", op(typ("add"), path("Patient"), part("name", `"valueString":"gender"`), part("value", `"valueCode":"other"`)),
			`"gender":"other"`},
		{"add to an absent repeating element makes a list", op(typ("add"), path("Patient"), part("name", `"valueString":"telecom"`), part("value", `"valueContactPoint":{"value":"x"}`)),
			`"telecom":[{"value":"x"}]`},
		{"add to an element that has a value", op(typ("add"), path("Patient"), part("name", `"valueString":"active"`), part("value", `"valueBoolean":true`)), ""},
		{"add where the path selects several", op(typ("add"), path("Patient.identifier"), part("name", `"valueString":"use"`), part("value", `"valueCode":"official"`)), ""},
		{"replace a primitive", op(typ("replace"), path("Patient.active"), part("value", `"valueBoolean":true`)), `"active":true`},
		{"replace a list item by index", op(typ("replace"), path("Patient.name[0].given[1]"), part("value", `"valueString":"C"`)), `"given":["A","C"]`},
		{"replace an element found by where()", op(typ("replace"), path("Patient.identifier.where(system='b')"), part("value", `"valueIdentifier":{"system":"z"}`)),
			`"identifier":[{"system":"a","value":"1"},{"system":"z"}]`},
		{"replace nothing", op(typ("replace"), path("Patient.birthDate"), part("value", `"valueDate":"2000-01-01"`)), ""},
		{"delete a primitive list item", op(typ("delete"), path("Patient.name[0].given[0]")), `"given":["B"]`},
		{"delete the last item drops the list", op(typ("delete"), path("Patient.name[0]")), `"identifier"`},
		{"delete nothing is no error", op(typ("delete"), path("Patient.birthDate")), `"active":false`},
		{"delete several is an error", op(typ("delete"), path("Patient.identifier")), ""},
		{"insert at the end", op(typ("insert"), path("Patient.identifier"), part("index", `"valueInteger":2`), part("value", `"valueIdentifier":{"system":"c"}`)),
			`{"system":"b","value":"2"},{"system":"c"}]`},
		{"insert beyond the end", op(typ("insert"), path("Patient.identifier"), part("index", `"valueInteger":3`), part("value", `"valueIdentifier":{"system":"c"}`)), ""},
		{"insert into a single element", op(typ("insert"), path("Patient.active"), part("index", `"valueInteger":0`), part("value", `"valueBoolean":true`)), ""},
		{"move", op(typ("move"), path("Patient.name[0].given"), part("source", `"valueInteger":1`), part("destination", `"valueInteger":0`)), `"given":["B","A"]`},
		{"move out of range", op(typ("move"), path("Patient.identifier"), part("source", `"valueInteger":5`), part("destination", `"valueInteger":0`)), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseFHIRPathPatch([]byte(tc.patch))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			res, _ := decodeObject([]byte(start))
			out, err := p.apply(res)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("applied, want a failure")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := encodeJSON(out)
			if !strings.Contains(string(got), tc.want) {
				t.Errorf("result %s lacks %s", got, tc.want)
			}
			if tc.name == "delete the last item drops the list" && strings.Contains(string(got), `"name"`) {
				t.Errorf("an empty name list was kept: %s", got)
			}
		})
	}
}

func TestFHIRPathPatchParse(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"not Parameters", `{"resourceType":"Patient"}`},
		{"no operation", `{"resourceType":"Parameters"}`},
		{"wrong parameter name", `{"resourceType":"Parameters","parameter":[{"name":"op"}]}`},
		{"unknown type", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"frob"},{"name":"path","valueString":"Patient"}]}]}`},
		{"add without name", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"value","valueBoolean":true}]}]}`},
		{"negative index", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"insert"},{"name":"path","valueString":"Patient.name"},{"name":"index","valueInteger":-1},{"name":"value","valueString":"x"}]}]}`},
		{"unsupported FHIRPath", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name.frobnicate()"}]}]}`},
	} {
		if _, err := parseFHIRPathPatch([]byte(tc.body)); err == nil {
			t.Errorf("%s: parsed, want a 400", tc.name)
		}
	}
}
