package defs

import (
	"reflect"
	"testing"
)

func TestLookup(t *testing.T) {
	if got := len(Types()); got != 146 {
		t.Errorf("R4 defines 146 resource types, elements.json has %d", got)
	}
	if Lookup("SubscriptionStatus") != nil {
		t.Error("SubscriptionStatus is R4B, not R4")
	}
	if Lookup("patient") != nil || Lookup("Resource") != nil || Lookup("DomainResource") != nil {
		t.Error("Lookup must know only concrete types, case-sensitively")
	}
	if len(elementsJSON) > 512<<10 {
		t.Errorf("elements.json is %d bytes; keep it compact", len(elementsJSON))
	}

	tests := []struct {
		typ, property string
		want          Element
	}{
		{"Patient", "id", Element{Name: "id", Max: "1", Summary: true}},
		{"Patient", "birthDate", Element{Name: "birthDate", Max: "1", Summary: true}},
		{"Patient", "_birthDate", Element{Name: "birthDate", Max: "1", Summary: true}},
		{"Patient", "name", Element{Name: "name", Max: "*", Summary: true}},
		{"Patient", "contact", Element{Name: "contact", Max: "*"}},
		{"Patient", "text", Element{Name: "text", Max: "1"}},
		{"Patient", "deceasedDateTime", Element{Name: "deceased[x]", Types: []string{"boolean", "dateTime"}, Max: "1", Summary: true}},
		{"Observation", "status", Element{Name: "status", Min: 1, Max: "1", Summary: true}},
		{"Observation", "code", Element{Name: "code", Min: 1, Max: "1", Summary: true}},
		{"Observation", "valueQuantity", Element{Name: "value[x]", Max: "1", Summary: true, Types: []string{
			"Quantity", "CodeableConcept", "string", "boolean", "integer", "Range", "Ratio", "SampledData", "time", "dateTime", "Period"}}},
		{"Bundle", "type", Element{Name: "type", Min: 1, Max: "1", Summary: true}},
		{"Bundle", "entry", Element{Name: "entry", Max: "*", Summary: true}},
	}
	for _, tt := range tests {
		t.Run(tt.typ+"."+tt.property, func(t *testing.T) {
			r := Lookup(tt.typ)
			if r == nil {
				t.Fatalf("Lookup(%q) = nil", tt.typ)
			}
			got, ok := r.Element(tt.property)
			if !ok {
				t.Fatalf("no element for %q", tt.property)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}

	for _, bad := range []struct{ typ, property string }{
		{"Patient", "value"},          // a choice element has no untyped property
		{"Patient", "deceased[x]"},    // nor one with the suffix
		{"Patient", "deceasedString"}, // nor one of a type it does not allow
		{"Patient", "foo"},
		{"Observation", "valueUri"},
	} {
		if el, ok := Lookup(bad.typ).Element(bad.property); ok {
			t.Errorf("%s.%s: got %+v, want none", bad.typ, bad.property, el)
		}
	}
}

// Every concrete resource has the Resource elements, and every element
// either repeats or not.
func TestElementsWellFormed(t *testing.T) {
	for _, typ := range Types() {
		r := Lookup(typ)
		seen := map[string]bool{}
		for _, el := range r.Elements {
			if el.Max != "1" && el.Max != "*" && el.Max != "0" {
				t.Errorf("%s.%s: max %q", typ, el.Name, el.Max)
			}
			if el.Choice() != (len(el.Types) > 0) {
				t.Errorf("%s.%s: choice element without types, or types without choice", typ, el.Name)
			}
			seen[el.Name] = true
		}
		for _, want := range []string{"id", "meta", "implicitRules", "language"} {
			if !seen[want] {
				t.Errorf("%s lacks %s", typ, want)
			}
		}
	}
}
