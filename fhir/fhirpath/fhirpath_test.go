package fhirpath

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

const observation = `{
  "resourceType": "Observation",
  "id": "bp",
  "contained": [{"resourceType": "Patient", "id": "p1", "name": [{"family": "Inner"}]}],
  "extension": [
    {"url": "http://example.org/a", "valueString": "first"},
    {"url": "http://example.org/b", "valueCode": "second"}
  ],
  "status": "final",
  "_status": {"extension": [{"url": "http://example.org/status-note", "valueString": "checked"}]},
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure"}], "text": "BP"},
  "subject": {"reference": "Patient/123"},
  "performer": [
    {"reference": "Practitioner/9"},
    {"reference": "https://other.example/fhir/Organization/7/_history/2"},
    {"reference": "#p1"},
    {"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"},
    {"type": "RelatedPerson", "identifier": {"value": "x"}}
  ],
  "effectiveDateTime": "2013-01-14T10:00:00Z",
  "valueQuantity": {"value": 5.40, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
  "component": [
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 107, "unit": "mmHg"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}, "valueQuantity": {"value": 60, "unit": "mmHg"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "9999-9"}]}, "valueString": "n/a"}
  ]
}`

const patient = `{
  "resourceType": "Patient",
  "id": "pat",
  "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"], "_given": [null, {"extension": [{"url": "http://example.org/nick", "valueString": "Jim"}]}]}],
  "gender": "male",
  "birthDate": "1974-12-25",
  "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
  "deceasedBoolean": false,
  "telecom": [{"system": "phone", "value": "555"}, {"system": "email", "value": "p@example.org"}],
  "link": [{"other": {"reference": "RelatedPerson/r1"}, "type": "seealso"}]
}`

// render writes a result compactly: values as JSON, with their type when
// the JSON does not show it.
func render(ns []Node) string {
	var parts []string
	for _, n := range ns {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(n.Value)
		s := strings.TrimSpace(b.String())
		if n.Value == nil {
			s = "-"
		}
		switch n.Type {
		case "", "string", "boolean", "integer", "decimal":
		default:
			s = n.Type + ":" + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestEvaluate(t *testing.T) {
	obs := decode(t, observation)
	pat := decode(t, patient)
	tests := []struct {
		res  map[string]any
		expr string
		want string
	}{
		// paths and the type that starts them
		{obs, "Observation.status", `"final"`},
		{obs, "status", `"final"`},
		{obs, "Patient.status", ``},
		{obs, "Resource.id", `"bp"`},
		{obs, "DomainResource.id", `"bp"`},
		{obs, "Observation.code.coding.code", `"85354-9"`},
		{obs, "Observation.category.coding.code", `"vital-signs"`},
		{pat, "Patient.name.given", `"Peter" "James"`},
		{obs, "Observation.nothing.here", ``},
		// choice elements
		{obs, "Observation.value", `Quantity:{"code":"mmol/L","system":"http://unitsofmeasure.org","unit":"mmol/L","value":5.40}`},
		{obs, "Observation.value.value", `5.40`},
		{obs, "Observation.effective", `dateTime:"2013-01-14T10:00:00Z"`},
		{obs, "(Observation.value as Quantity).unit", `"mmol/L"`},
		{obs, "Observation.value.as(Quantity).unit", `"mmol/L"`},
		{obs, "Observation.value.ofType(Quantity).unit", `"mmol/L"`},
		{obs, "Observation.value.ofType(CodeableConcept)", ``},
		{obs, "Observation.value as CodeableConcept", ``},
		{obs, "Observation.value is Quantity", `true`},
		{obs, "Observation.value.is(FHIR.Quantity)", `true`},
		{obs, "Observation.value is Range", `false`},
		{obs, "Observation.component.value.ofType(Quantity).value", `107 60`},
		{obs, "Observation.component.value.ofType(string)", `"n/a"`},
		{obs, "(Observation.component.value.ofType(Quantity)) | (Observation.component.value.ofType(SampledData))", `Quantity:{"unit":"mmHg","value":107} Quantity:{"unit":"mmHg","value":60}`},
		{pat, "Patient.deceased", `false`},
		{pat, "Patient.deceased.exists() and Patient.deceased != false", `false`},
		{pat, "Patient.deceased.ofType(dateTime)", ``},
		// union, indexers, first/last, count
		{obs, "Observation.status | Observation.code.text", `"final" "BP"`},
		{obs, "Observation.status | Observation.status", `"final"`},
		{obs, "Observation.component[1].code.coding.code", `"8462-4"`},
		{obs, "Observation.component[5]", ``},
		{obs, "Observation.component.first().code.coding.code", `"8480-6"`},
		{obs, "Observation.component.last().value", `"n/a"`},
		{obs, "Observation.component.count()", `3`},
		{obs, "Observation.component.tail().count()", `2`},
		{obs, "Observation.component.skip(2).count()", `1`},
		{obs, "Observation.component.take(1).count()", `1`},
		// where, exists, empty, not, and/or
		{pat, "Patient.telecom.where(system='email').value", `"p@example.org"`},
		{pat, "Patient.telecom.where(system='phone' or system='email').count()", `2`},
		{pat, "Patient.telecom.where(system='phone' and value='555').exists()", `true`},
		{pat, "Patient.telecom.where(system != 'phone').value", `"p@example.org"`},
		{pat, "Patient.telecom.exists(system='fax')", `false`},
		{pat, "Patient.photo.empty()", `true`},
		{pat, "Patient.photo.exists().not()", `true`},
		{pat, "Patient.name.where($this.family = 'Chalmers').given.first()", `"Peter"`},
		{pat, "Patient.name.given.where($this = 'James')", `"James"`},
		{pat, "Patient.name.given.select($this)", `"Peter" "James"`},
		{pat, "Patient.telecom.all(value.exists())", `true`},
		{pat, "Patient.gender in ('male' | 'female')", `true`},
		{pat, "('male' | 'other') contains Patient.gender", `true`},
		{pat, "Patient.gender ~ 'MALE'", `true`},
		{pat, "Patient.birthDate > @1970-01-01", `true`},
		{pat, "Patient.name.given.startsWith('Pe')", ``}, // two items: see TestEvaluateErrors
		{pat, "Patient.gender.startsWith('ma')", `true`},
		{pat, "Patient.gender.upper()", `"MALE"`},
		{pat, "iif(Patient.gender = 'male', 'M', 'F')", `"M"`},
		{pat, "{}.exists()", `false`},
		// references and resolve()
		{obs, "Observation.subject.where(resolve() is Patient)", `{"reference":"Patient/123"}`},
		{obs, "Observation.subject.where(resolve() is Practitioner)", ``},
		{obs, "Observation.performer.resolve()", `Practitioner:- Organization:- Patient:{"id":"p1","name":[{"family":"Inner"}],"resourceType":"Patient"} RelatedPerson:-`},
		{obs, "Observation.performer.where(resolve() is Organization).reference", `"https://other.example/fhir/Organization/7/_history/2"`},
		{obs, "Observation.performer.resolve().ofType(Patient).name.family", `"Inner"`},
		{obs, "Observation.performer.where(resolve() is Patient).reference", `"#p1"`},
		{obs, "Observation.performer.where(resolve() is RelatedPerson).identifier.value", `"x"`},
		{obs, "Observation.contained.ofType(Patient).id", `"p1"`},
		{obs, "%resource.contained.name.family", `"Inner"`},
		{obs, "%resource.id", `"bp"`},
		// extensions, primitives' extensions and hasValue
		{obs, "Observation.extension('http://example.org/b').value", `code:"second"`},
		{obs, "Observation.extension.where(url='http://example.org/a').value.ofType(string)", `"first"`},
		{obs, "Observation.extension.where(url = 'http://example.org/a').extension.value.code", ``},
		{obs, "Observation.status.extension('http://example.org/status-note').value", `"checked"`},
		{pat, "Patient.birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime').value", `dateTime:"1974-12-25T14:35:45-05:00"`},
		{pat, "Patient.name.given[1].extension.value", `"Jim"`},
		{pat, "Patient.birthDate.hasValue()", `true`},
		{pat, "Patient.name.hasValue()", `false`},
		// literals and constants
		{pat, "'a\\'b'", `"a'b"`},
		{pat, "-5", `-5`},
		{pat, "%ucum", `"http://unitsofmeasure.org"`},
		{pat, "true and {}", ``},
		{pat, "false and {}", `false`},
		{pat, "true or {}", `true`},
		{pat, "false implies {}", `true`},
		{pat, "true xor false", `true`},
		{pat, "Patient.link.other.resolve() is RelatedPerson", `true`},
		{pat, "Patient.children().count() > 5", `true`},
		{pat, "Patient.descendants().where($this = 'Chalmers').count()", `1`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			e, err := Compile(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Evaluate(tt.res)
			if tt.expr == "Patient.name.given.startsWith('Pe')" {
				if err == nil {
					t.Errorf("startsWith on two items: no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := render(got); s != tt.want {
				t.Errorf("got  %s\nwant %s", s, tt.want)
			}
		})
	}
}

// Unions of many items stay linear.
func TestUnionMany(t *testing.T) {
	var members []any
	for i := 0; i < 50000; i++ {
		members = append(members, map[string]any{"entity": map[string]any{"reference": "Patient/" + strconv.Itoa(i%1000)}})
	}
	g := map[string]any{"resourceType": "Group", "member": members, "id": "g"}
	for src, want := range map[string]string{
		"(Group.member | Group.member).count()":              "50000",
		"(Group.member.entity.reference | Group.id).count()": "1001",
		"Group.member.entity.reference.distinct().count()":   "1000",
	} {
		got, err := MustCompile(src).Evaluate(g)
		if err != nil {
			t.Fatal(err)
		}
		if render(got) != want {
			t.Errorf("%s = %s, want %s", src, render(got), want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, src := range []string{
		"",
		"Patient.name.",
		"Patient.name[0",
		"Patient.(name)",
		"Patient.name.foo()",
		"Patient.name.where()",
		"Patient.name.first(1)",
		"Observation.value + 1",
		"Observation.value * 2",
		"Observation.value div 2",
		"4 days",
		"5 'mg'",
		"%vs-foo",
		"$total",
		"'unterminated",
		"Patient.name.memberOf('http://x')",
		"Patient # name",
		"Patient.name.ofType()",
		"-Patient.name",
		strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100),
		strings.Repeat("-", 100) + "1",
		strings.Repeat("a.", 40000) + "b",
	} {
		if _, err := Compile(src); err == nil {
			t.Errorf("Compile(%q): no error", src)
		}
	}
}

func TestBranches(t *testing.T) {
	tests := []struct {
		src  string
		want []Branch
	}{
		{"Patient.name", []Branch{{"Patient.name", "Patient"}}},
		{"Account.subject.where(resolve() is Patient) | Patient.link.other", []Branch{
			{"Account.subject.where(resolve() is Patient)", "Account"}, {"Patient.link.other", "Patient"}}},
		{"(Observation.value.ofType(Quantity)) | (Observation.value.ofType(SampledData)) | Resource.id", []Branch{
			{"(Observation.value.ofType(Quantity))", "Observation"}, {"(Observation.value.ofType(SampledData))", "Observation"}, {"Resource.id", "Resource"}}},
		{"Observation | Observation.component", []Branch{{"Observation", "Observation"}, {"Observation.component", "Observation"}}},
		{"Patient.deceased.exists() and Patient.deceased != false", []Branch{{"Patient.deceased.exists() and Patient.deceased != false", "Patient"}}},
		{"value.ofType(Quantity) | value.ofType(Range)", []Branch{{"value.ofType(Quantity)", ""}, {"value.ofType(Range)", ""}}},
		{"%resource.referenceSeq.chromosome", []Branch{{"%resource.referenceSeq.chromosome", ""}}},
		{"Bundle.entry[0].resource", []Branch{{"Bundle.entry[0].resource", "Bundle"}}},
		{"Condition.onset.as(dateTime)", []Branch{{"Condition.onset.as(dateTime)", "Condition"}}},
		{"Observation.value as Quantity | Observation.value as SampledData", []Branch{
			{"Observation.value as Quantity", "Observation"}, {"Observation.value as SampledData", "Observation"}}},
	}
	for _, tt := range tests {
		got := MustCompile(tt.src).Branches()
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %v\nwant %v", tt.src, got, tt.want)
		}
	}
}

func TestReferenceType(t *testing.T) {
	for ref, want := range map[string]string{
		"Patient/123":                             "Patient",
		"Patient/123/_history/2":                  "Patient",
		"https://example.org/fhir/Patient/123":    "Patient",
		"http://hl7.org/fhir/ValueSet/x|4.0.1":    "ValueSet",
		"urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187": "",
		"#p1":         "",
		"Patient/":    "",
		"/123":        "",
		"patient/123": "",
		"Pat1ent/123": "",
		"":            "",
	} {
		if got := ReferenceType(ref); got != want {
			t.Errorf("ReferenceType(%q) = %q, want %q", ref, got, want)
		}
	}
}

// Evaluation never panics, whatever the data: every expression of the
// table runs over values of every JSON shape in every position.
func TestEvaluateOddData(t *testing.T) {
	odd := []any{nil, "", "x", true, json.Number("1"), json.Number("1e400"), []any{}, []any{nil, "a", []any{}},
		map[string]any{}, map[string]any{"reference": 5}, map[string]any{"url": []any{"x"}}}
	exprs := []string{
		"Observation.value.ofType(Quantity)", "Observation.subject.where(resolve() is Patient)",
		"Observation.extension('u').value", "Observation.status.extension.value", "Observation.component[0].code",
		"Observation.code.coding.where(system = 'x').code", "Observation.children()", "Observation.descendants()",
		"Observation.contained.resolve()", "Observation.value.hasValue()", "Observation.status = 'final'",
		"Observation.value > 5", "Observation.status.startsWith('f')", "%resource.contained.id",
		"Observation.performer.resolve()",
	}
	for _, src := range exprs {
		e := MustCompile(src)
		for _, key := range []string{"value", "valueQuantity", "subject", "extension", "status", "_status", "component", "code", "contained", "performer"} {
			for _, v := range odd {
				res := map[string]any{"resourceType": "Observation", key: v}
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Errorf("%s on %s=%v: panic %v", src, key, v, r)
						}
					}()
					e.Evaluate(res)
				}()
			}
		}
	}
	// Not even on a root that is not a resource.
	for _, v := range odd {
		for _, src := range exprs {
			MustCompile(src).Evaluate(v)
		}
	}
}

func TestEvaluateErrors(t *testing.T) {
	pat := decode(t, patient)
	for _, src := range []string{
		"Patient.name.given.startsWith('Pe')",
		"Patient.name.given is string",
		"Patient.name.given.single()",
		"Patient.name.given > 'A'",
		"Patient.name[Patient.name]",
	} {
		if _, err := MustCompile(src).Evaluate(pat); err == nil {
			t.Errorf("%s: no error", src)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	obs := decode(b, observation)
	exprs := []*Expression{
		MustCompile("Observation.code"),
		MustCompile("Observation.subject.where(resolve() is Patient)"),
		MustCompile("(Observation.value.ofType(Quantity)) | (Observation.value.ofType(SampledData))"),
		MustCompile("Observation.component.value.ofType(CodeableConcept)"),
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, e := range exprs {
			if _, err := e.Evaluate(obs); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func ExampleExpression_Evaluate() {
	d := json.NewDecoder(strings.NewReader(`{"resourceType": "Observation",
		"valueQuantity": {"value": 5.4, "unit": "mg"}, "subject": {"reference": "Patient/1"}}`))
	d.UseNumber()
	var obs map[string]any
	d.Decode(&obs)

	q, _ := MustCompile("(Observation.value.ofType(Quantity)).value").Evaluate(obs)
	p, _ := MustCompile("Observation.subject.where(resolve() is Patient).reference").Evaluate(obs)
	fmt.Println(q[0].Value, p[0].Value)
	// Output: 5.4 Patient/1
}

// FuzzCompile: no source makes Compile or Evaluate panic.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"Observation.value.ofType(Quantity)", "Patient.name.where(use='official').given.first()",
		"Observation.subject.where(resolve() is Patient)", "Bundle.entry[0].resource", "%resource.id | 'a' | 1.5 | @2013",
		"Patient.telecom.where(system='email' and value.startsWith('a')).exists().not()", "(a as B) is C", "{}",
		"Patient.extension('u').value.as(FHIR.string)", "iif(a, b, c).children().descendants().count() > 2",
	} {
		f.Add(s)
	}
	obs := decode(f, observation)
	pat := decode(f, patient)
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Compile(src)
		if err != nil {
			return
		}
		e.Evaluate(obs)
		e.Evaluate(pat)
		e.Branches()
	})
}
