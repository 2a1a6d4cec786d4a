package search

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/defs"
)

// excluded lists, by code, the R4 parameters the registry does not serve,
// for every type that has them. Anything else that fails to compile,
// evaluate or apply to one of its base types fails TestWholeSpecification.
var excluded = map[string]string{
	"_content": notServed["_content"],
	"_query":   notServed["_query"],
}

// corpus is every resource of testdata: the official examples (with the
// resources inside example Bundles) and the Synthea transaction bundles'
// entries.
type corpus struct {
	typ  string
	name string
	res  map[string]any
}

func loadCorpus(t testing.TB) []corpus {
	t.Helper()
	var out []corpus
	add := func(name string, res map[string]any, nested bool) {
		typ, _ := res["resourceType"].(string)
		out = append(out, corpus{typ: typ, name: name, res: res})
		if !nested {
			return
		}
		for i, e := range objects(res["entry"]) {
			if r, ok := e["resource"].(map[string]any); ok {
				rt, _ := r["resourceType"].(string)
				out = append(out, corpus{typ: rt, name: name + "#entry" + strconv.Itoa(i), res: r})
			}
		}
	}
	for _, dir := range []string{"examples", "synthea"} {
		files, err := filepath.Glob(filepath.Join("..", "..", "testdata", dir, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no testdata/%s: %v", dir, err)
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			var res map[string]any
			if err := d.Decode(&res); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			add(filepath.Base(f), res, true)
		}
	}
	return out
}

// TestWholeSpecification walks every parameter of every resource type of
// the official SearchParameter file: each is served (its expression
// compiles and evaluates without error on every example and Synthea
// resource) or excluded above with its reason.
func TestWholeSpecification(t *testing.T) {
	r := Default()

	// Every (type, code) the specification defines.
	type key struct{ typ, code string }
	want := map[key]defs.SearchParameter{}
	for _, sp := range defs.SearchParameters() {
		for _, b := range sp.Base {
			types := []string{b}
			if b == "Resource" || b == "DomainResource" {
				types = nil
				for _, t := range defs.Types() {
					if b == "Resource" || isDomainResource(t) {
						types = append(types, t)
					}
				}
			}
			for _, typ := range types {
				want[key{typ, sp.Code}] = sp
			}
		}
	}
	unsupported := map[key]Unsupported{}
	for _, u := range r.Unsupported() {
		unsupported[key{u.Type, u.Name}] = u
	}
	served := 0
	for k, sp := range want {
		p, ok := r.Param(k.typ, k.code)
		u, skipped := unsupported[k]
		switch {
		case ok && skipped:
			t.Errorf("%s.%s is both served and unsupported", k.typ, k.code)
		case ok:
			served++
			if p.URL != sp.URL || string(p.Type) != sp.Type {
				t.Errorf("%s.%s: served from %s (%s), want %s (%s)", k.typ, k.code, p.URL, p.Type, sp.URL, sp.Type)
			}
			if p.expr == nil && !p.narrative {
				t.Errorf("%s.%s: no expression", k.typ, k.code)
			}
		case skipped:
			if reason, listed := excluded[k.code]; !listed || reason != u.Reason {
				t.Errorf("%s.%s is not served: %s", k.typ, k.code, u.Reason)
			}
		default:
			t.Errorf("%s.%s is neither served nor listed as unsupported", k.typ, k.code)
		}
	}
	for _, u := range r.Unsupported() {
		if _, ok := want[key{u.Type, u.Name}]; !ok {
			t.Errorf("unsupported %s.%s is not an R4 parameter: %s", u.Type, u.Name, u.Reason)
		}
	}

	// Every served parameter evaluates on every resource of its type.
	resources := loadCorpus(t)
	byType := map[string]int{}
	producing := map[key]bool{}
	silent := map[key]int{} // selected values that gave no entry
	for _, c := range resources {
		if r.types[c.typ] == nil {
			t.Errorf("%s: unknown resourceType %q", c.name, c.typ)
			continue
		}
		byType[c.typ]++
		entries, err := r.ExtractValue(c.typ, c.res)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		got := map[string]bool{}
		for _, e := range entries {
			got[e.Param] = true
			producing[key{c.typ, e.Param}] = true
		}
		for _, p := range r.Params(c.typ) {
			if p.expr == nil || got[p.Name] {
				continue
			}
			if nodes, _ := p.expr.Evaluate(c.res); len(nodes) > 0 {
				silent[key{c.typ, p.Name}]++
			}
		}
	}
	var withData, produced int
	compiled, producingDefs := map[string]bool{}, map[string]bool{}
	for k, sp := range want {
		p, ok := r.Param(k.typ, k.code)
		if ok {
			compiled[sp.URL] = true
		}
		if ok && byType[k.typ] > 0 {
			withData++
			if producing[k] {
				produced++
				producingDefs[p.URL] = true
			}
		}
	}
	t.Logf("R4: %d SearchParameters; %d served for at least one type, %d produce entries on the corpus",
		len(defs.SearchParameters()), len(compiled), len(producingDefs))
	t.Logf("R4: %d (type, parameter) pairs; %d served, %d unsupported (%v)", len(want), served, len(want)-served, keys(excluded))
	t.Logf("corpus: %d resources of %d types; %d served pairs of those types, %d produce entries on them", len(resources), len(byType), withData, produced)
	var quiet []string
	for k, n := range silent {
		quiet = append(quiet, k.typ+"."+k.code+"×"+strconv.Itoa(n))
	}
	sort.Strings(quiet)
	t.Logf("selected values without entries: %v", quiet)
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestRegistry(t *testing.T) {
	r := Default()
	tests := []struct {
		typ, name string
		want      Param
	}{
		{"Patient", "name", Param{Name: "name", Type: String, URL: "http://hl7.org/fhir/SearchParameter/Patient-name",
			Expression: "Patient.name", Modifiers: modifiers[String], MultipleOr: true, MultipleAnd: true}},
		{"Patient", "phonetic", Param{Name: "phonetic", Type: String, URL: "http://hl7.org/fhir/SearchParameter/individual-phonetic",
			Expression: "Patient.name", Modifiers: modifiers[String], Phonetic: true, MultipleOr: true, MultipleAnd: true}},
		{"Observation", "patient", Param{Name: "patient", Type: Reference, URL: "http://hl7.org/fhir/SearchParameter/clinical-patient",
			Expression: "Observation.subject.where(resolve() is Patient)", Targets: []string{"Patient"},
			Modifiers: modifiers[Reference], MultipleOr: true, MultipleAnd: true}},
		{"Observation", "value-quantity", Param{Name: "value-quantity", Type: Quantity, URL: "http://hl7.org/fhir/SearchParameter/Observation-value-quantity",
			Expression: "(Observation.value.ofType(Quantity)) | (Observation.value.ofType(SampledData))",
			Modifiers:  modifiers[Quantity], Comparators: comparators, MultipleOr: true, MultipleAnd: true}},
		{"Encounter", "date", Param{Name: "date", Type: Date, URL: "http://hl7.org/fhir/SearchParameter/clinical-date",
			Expression: "Encounter.period", Modifiers: modifiers[Date], Comparators: comparators, MultipleOr: true, MultipleAnd: true}},
		{"Patient", "_id", Param{Name: "_id", Type: Token, URL: "http://hl7.org/fhir/SearchParameter/Resource-id",
			Expression: "Resource.id", Modifiers: modifiers[Token], MultipleOr: true, MultipleAnd: true}},
		{"Bundle", "_lastUpdated", Param{Name: "_lastUpdated", Type: Date, URL: "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
			Expression: "Resource.meta.lastUpdated", Modifiers: modifiers[Date], Comparators: comparators, MultipleOr: true, MultipleAnd: true}},
		{"Patient", "_text", Param{Name: "_text", Type: String, URL: "http://hl7.org/fhir/SearchParameter/DomainResource-text",
			Modifiers: modifiers[String], MultipleOr: true, MultipleAnd: true}},
		{"Patient", "race", Param{Name: "race", Type: Token, URL: "http://hl7.org/fhir/us/core/SearchParameter/us-core-race",
			Expression: "Patient.extension.where(url = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race').extension.value.code",
			Modifiers:  modifiers[Token], MultipleOr: true, MultipleAnd: true}},
	}
	for _, tt := range tests {
		p, ok := r.Param(tt.typ, tt.name)
		if !ok {
			t.Errorf("%s.%s: not served", tt.typ, tt.name)
			continue
		}
		got := *p
		got.expr, got.narrative = nil, false
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s.%s:\n got %+v\nwant %+v", tt.typ, tt.name, got, tt.want)
		}
	}

	// Composite components name their parameters.
	p, _ := r.Param("Observation", "component-code-value-quantity")
	var comps []string
	for _, c := range p.Components {
		comps = append(comps, c.Name+":"+string(c.Type)+":"+c.Expression)
	}
	if want := []string{"component-code:token:code", "component-value-quantity:quantity:value.ofType(Quantity)"}; !reflect.DeepEqual(comps, want) {
		t.Errorf("component-code-value-quantity components %v, want %v", comps, want)
	}

	for _, bad := range [][2]string{{"Patient", "Name"}, {"Patient", "_content"}, {"Patient", "_query"},
		{"Bundle", "_text"}, {"patient", "name"}, {"Patient", "code"}} {
		if _, ok := r.Param(bad[0], bad[1]); ok {
			t.Errorf("%s.%s: served", bad[0], bad[1])
		}
	}
	if n := len(r.Params("Observation")); n < 40 {
		t.Errorf("Observation has %d parameters", n)
	}
	if got := r.Compartment("Patient", "Observation"); !reflect.DeepEqual(got, []string{"subject", "performer"}) {
		t.Errorf("Patient compartment of Observation: %v", got)
	}
	if got := r.Compartment("Patient", "Practitioner"); got != nil {
		t.Errorf("Patient compartment of Practitioner: %v", got)
	}
}

func TestWith(t *testing.T) {
	r := Default()
	custom := defs.SearchParameter{
		URL: "http://example.org/SearchParameter/patient-nickname", Code: "nickname", Base: []string{"Patient", "Practitioner"},
		Type: "string", Expression: "Patient.name.where(use='nickname').given | Practitioner.name.where(use='nickname').given",
	}
	n, err := r.With(custom)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Param("Patient", "nickname"); ok {
		t.Error("With changed the registry it was called on")
	}
	p, ok := n.Param("Practitioner", "nickname")
	if !ok || p.Expression != "Practitioner.name.where(use='nickname').given" {
		t.Fatalf("Practitioner.nickname: %+v", p)
	}
	entries, err := n.Extract("Patient", []byte(`{"resourceType":"Patient","name":[{"use":"nickname","given":["Bob"]},{"given":["Robert"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		if e.Param == "nickname" {
			got = append(got, e.Text)
		}
	}
	if !reflect.DeepEqual(got, []string{"bob"}) {
		t.Errorf("nickname entries %v", got)
	}

	for _, bad := range []defs.SearchParameter{
		{URL: "x", Code: "a", Base: []string{"Patient"}, Type: "string", Expression: "Patient.name.memberOf('x')"},
		{URL: "x", Code: "a", Base: []string{"Patient"}, Type: "string", Expression: "Observation.code"},
		{URL: "x", Code: "a", Base: []string{"NotAType"}, Type: "string", Expression: "NotAType.name"},
		{URL: "x", Code: "a", Base: []string{"Patient"}, Type: "fuzzy", Expression: "Patient.name"},
		{URL: "x", Code: "a", Base: []string{"Patient"}, Type: "composite", Expression: "Patient.name"},
		{URL: "x", Code: "", Base: []string{"Patient"}, Type: "string", Expression: "Patient.name"},
		{URL: "x", Code: "_nick", Base: []string{"Patient"}, Type: "string", Expression: "Patient.name"},
		{URL: "x", Code: "nick:name", Base: []string{"Patient"}, Type: "string", Expression: "Patient.name"},
		{URL: "x", Code: "nick", Type: "string", Expression: "Patient.name"},
	} {
		if _, err := r.With(bad); err == nil {
			t.Errorf("With(%+v): no error", bad)
		}
	}
}
