package defs

import (
	"reflect"
	"testing"
)

func TestSearchParameters(t *testing.T) {
	ps := SearchParameters()
	if len(ps) != 1378 {
		t.Errorf("R4 4.0.1 defines 1378 SearchParameters, got %d", len(ps))
	}
	if n := len(searchParametersJSON); n > 600<<10 {
		t.Errorf("search-parameters.json is %d bytes; keep it compact", n)
	}
	byURL := map[string]SearchParameter{}
	types := map[string]bool{"number": true, "date": true, "string": true, "token": true, "reference": true,
		"composite": true, "quantity": true, "uri": true, "special": true}
	for _, p := range ps {
		if _, dup := byURL[p.URL]; dup {
			t.Errorf("duplicate url %s", p.URL)
		}
		byURL[p.URL] = p
		if p.Code == "" || len(p.Base) == 0 || !types[p.Type] {
			t.Errorf("%s: incomplete: %+v", p.URL, p)
		}
		for _, b := range p.Base {
			if b != "Resource" && b != "DomainResource" && Lookup(b) == nil {
				t.Errorf("%s: base %q is not an R4 resource type", p.URL, b)
			}
		}
		if p.Expression == "" && p.Code != "_text" && p.Code != "_content" && p.Code != "_query" {
			t.Errorf("%s: no expression", p.URL)
		}
		if (p.Type == "composite") != (len(p.Component) > 0) {
			t.Errorf("%s: composite without components, or components without composite", p.URL)
		}
	}
	// Every composite's components point at parameters of the bundle.
	for _, p := range ps {
		for _, c := range p.Component {
			if _, ok := byURL[c.Definition]; !ok || c.Expression == "" {
				t.Errorf("%s: component %+v does not resolve", p.URL, c)
			}
		}
	}

	no := false
	tests := []SearchParameter{
		{
			URL: "http://hl7.org/fhir/SearchParameter/individual-birthdate", Code: "birthdate",
			Base: []string{"Patient", "Person", "RelatedPerson"}, Type: "date",
			Expression: "Patient.birthDate | Person.birthDate | RelatedPerson.birthDate",
			Comparator: []string{"eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", "ap"},
		},
		{
			URL: "http://hl7.org/fhir/SearchParameter/Observation-component-code-value-quantity", Code: "component-code-value-quantity",
			Base: []string{"Observation"}, Type: "composite", Expression: "Observation.component", MultipleOr: &no,
			Component: []SearchComponent{
				{Definition: "http://hl7.org/fhir/SearchParameter/Observation-component-code", Expression: "code"},
				{Definition: "http://hl7.org/fhir/SearchParameter/Observation-component-value-quantity", Expression: "value.ofType(Quantity)"},
			},
		},
		{
			URL: "http://hl7.org/fhir/SearchParameter/Location-near", Code: "near",
			Base: []string{"Location"}, Type: "special", Expression: "Location.position", XPathUsage: "nearby",
		},
		{
			URL: "http://hl7.org/fhir/SearchParameter/Resource-content", Code: "_content",
			Base: []string{"Resource"}, Type: "string",
		},
	}
	for _, want := range tests {
		got := byURL[want.URL]
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", want.URL, got, want)
		}
	}
	if p := byURL["http://hl7.org/fhir/SearchParameter/clinical-patient"]; len(p.Base) != 32 || !reflect.DeepEqual(p.Target, []string{"Patient"}) {
		t.Errorf("clinical-patient: %d bases, targets %v", len(p.Base), p.Target)
	}
}

func TestUSCoreSearchParameters(t *testing.T) {
	ps := USCoreSearchParameters()
	if len(ps) != 74 {
		t.Errorf("US Core 3.1.0 defines 74 SearchParameters, got %d", len(ps))
	}
	var race SearchParameter
	for _, p := range ps {
		if p.Code == "race" {
			race = p
		}
	}
	want := SearchParameter{
		URL: "http://hl7.org/fhir/us/core/SearchParameter/us-core-race", Code: "race",
		Base: []string{"Patient"}, Type: "token",
		Expression: "Patient.extension.where(url = 'http://hl7.org/fhir/us/core/StructureDefinition/us-core-race').extension.value.code",
	}
	if !reflect.DeepEqual(race, want) {
		t.Errorf("race:\n got %+v\nwant %+v", race, want)
	}
}

func TestCompartments(t *testing.T) {
	if got, want := Compartments(), []string{"Device", "Encounter", "Patient", "Practitioner", "RelatedPerson"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Compartments() = %v, want %v", got, want)
	}
	c, ok := Compartment("Patient")
	if !ok || c.URL != "http://hl7.org/fhir/CompartmentDefinition/patient" || !c.Search {
		t.Fatalf("Compartment(Patient) = %+v, %v", c, ok)
	}
	params := map[string][]string{}
	for _, r := range c.Resource {
		if Lookup(r.Code) == nil {
			t.Errorf("Patient compartment: %q is not an R4 resource type", r.Code)
		}
		params[r.Code] = r.Param
	}
	for typ, want := range map[string][]string{
		"Observation":       {"subject", "performer"},
		"MedicationRequest": {"subject"},
		"Patient":           {"link"},
		"Appointment":       {"actor"},
		"Communication":     {"subject", "sender", "recipient"},
		"Invoice":           {"subject", "patient", "recipient"},
		"Practitioner":      nil,
	} {
		if got := params[typ]; !reflect.DeepEqual(got, want) {
			t.Errorf("Patient compartment %s: params %v, want %v", typ, got, want)
		}
	}
	if _, ok := Compartment("patient"); ok {
		t.Error("compartment codes are case-sensitive")
	}
}
