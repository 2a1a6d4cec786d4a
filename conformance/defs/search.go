package defs

import (
	"embed"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
)

// search-parameters.json is the official R4 4.0.1 SearchParameter bundle
// (HL7, CC0) compacted by search_gen.go to what a server runs on;
// search-parameters-uscore.json is the same for US Core 3.1.0 (HL7, CC0).
// search-parameters-kiln.json holds the few parameters Kiln defines
// itself (canonical URLs under https://github.com/kiln-fhir/kiln/), written
// by hand: PaymentReconciliation.detail.request, which R4 leaves without
// one (its `request` is the Task) and the portal rules need.
// The compartment definitions are the official R4 files, copied verbatim.
// To regenerate from ../shared/fhir-r4:
//
//	go generate -run search_gen ./conformance/defs

//go:generate go run search_gen.go -bundle ../../../shared/fhir-r4/search-parameters.json -uscore ../../../shared/fhir-r4/us-core-3.1.0

var (
	//go:embed search-parameters.json
	searchParametersJSON []byte
	//go:embed search-parameters-uscore.json
	usCoreSearchParametersJSON []byte
	//go:embed search-parameters-kiln.json
	kilnSearchParametersJSON []byte
	//go:embed compartmentdefinition-*.json
	compartmentFS embed.FS
)

// SearchParameter is a SearchParameter resource reduced to what a server
// runs on. Its JSON names are FHIR's, so a SearchParameter resource
// (say, one created through the API) decodes into it directly.
type SearchParameter struct {
	URL  string `json:"url"`
	Code string `json:"code"`
	// Base lists the resource types the parameter applies to; "Resource"
	// and "DomainResource" stand for all (DomainResource: all but Bundle,
	// Binary and Parameters).
	Base []string `json:"base"`
	// Type is number | date | string | token | reference | composite |
	// quantity | uri | special.
	Type string `json:"type"`
	// Expression is FHIRPath. A parameter shared by several types has one
	// expression for all of them, a union of per-type paths
	// ("Account.subject | Patient.link.other"). Empty for the parameters
	// the specification leaves to the server (_text, _content, _query).
	Expression string `json:"expression,omitempty"`
	// XPathUsage is kept only when it is not "normal": "phonetic" or
	// "nearby" say how the parameter matches.
	XPathUsage  string   `json:"xpathUsage,omitempty"`
	Target      []string `json:"target,omitempty"`
	MultipleOr  *bool    `json:"multipleOr,omitempty"`
	MultipleAnd *bool    `json:"multipleAnd,omitempty"`
	Comparator  []string `json:"comparator,omitempty"`
	Modifier    []string `json:"modifier,omitempty"`
	// Component lists a composite parameter's parts, in order.
	Component []SearchComponent `json:"component,omitempty"`
}

// SearchComponent is one part of a composite parameter: Definition is the
// canonical URL of the parameter that gives its type, Expression is
// FHIRPath relative to each node the composite's expression selects.
type SearchComponent struct {
	Definition string `json:"definition"`
	Expression string `json:"expression"`
}

func decodeSearchParameters(name string, raw []byte) []SearchParameter {
	var ps []SearchParameter
	if err := json.Unmarshal(raw, &ps); err != nil {
		panic(fmt.Sprintf("defs: %s: %v", name, err))
	}
	return ps
}

var (
	searchParameters = sync.OnceValue(func() []SearchParameter {
		return decodeSearchParameters("search-parameters.json", searchParametersJSON)
	})
	usCoreSearchParameters = sync.OnceValue(func() []SearchParameter {
		return decodeSearchParameters("search-parameters-uscore.json", usCoreSearchParametersJSON)
	})
	kilnSearchParameters = sync.OnceValue(func() []SearchParameter {
		return decodeSearchParameters("search-parameters-kiln.json", kilnSearchParametersJSON)
	})
)

// SearchParameters returns every SearchParameter of the R4 base
// specification (1,378), sorted by URL. The slice is shared: callers must
// not modify it.
func SearchParameters() []SearchParameter { return searchParameters() }

// USCoreSearchParameters returns the SearchParameters of US Core 3.1.0,
// sorted by URL. Most restate a base parameter under the same code; race
// and ethnicity are new. The slice is shared: callers must not modify it.
func USCoreSearchParameters() []SearchParameter { return usCoreSearchParameters() }

// KilnSearchParameters returns the SearchParameters Kiln defines itself,
// sorted by URL: built in like R4's, with canonical URLs under
// https://github.com/kiln-fhir/kiln/. The slice is shared: callers must
// not modify it.
func KilnSearchParameters() []SearchParameter { return kilnSearchParameters() }

// CompartmentDefinition says which resources belong to a compartment
// (compartmentdefinition.html) and through which search parameters.
type CompartmentDefinition struct {
	URL string `json:"url"`
	// Code is the compartment type: Patient, Encounter, RelatedPerson,
	// Practitioner or Device.
	Code     string                `json:"code"`
	Search   bool                  `json:"search"`
	Resource []CompartmentResource `json:"resource"`
}

// CompartmentResource is a resource type of a compartment: a resource is in
// the compartment of X when any of Param references X. A type listed
// without Param is never in the compartment. The pseudo-parameter "{def}"
// means the compartment's resource itself (the Encounter, Practitioner and
// RelatedPerson compartments hold their own resource; the Patient
// compartment instead holds the patients its patient links to).
type CompartmentResource struct {
	Code  string   `json:"code"`
	Param []string `json:"param,omitempty"`
}

var compartments = sync.OnceValue(func() map[string]CompartmentDefinition {
	files, err := compartmentFS.ReadDir(".")
	if err != nil {
		panic(fmt.Sprintf("defs: compartment definitions: %v", err))
	}
	m := map[string]CompartmentDefinition{}
	for _, f := range files {
		raw, err := compartmentFS.ReadFile(f.Name())
		if err != nil {
			panic(fmt.Sprintf("defs: %s: %v", f.Name(), err))
		}
		var c CompartmentDefinition
		if err := json.Unmarshal(raw, &c); err != nil {
			panic(fmt.Sprintf("defs: %s: %v", f.Name(), err))
		}
		m[c.Code] = c
	}
	return m
})

// Compartment returns the R4 CompartmentDefinition of a compartment type
// ("Patient"), or false when there is none. Its slices are shared: callers
// must not modify them.
func Compartment(code string) (CompartmentDefinition, bool) {
	c, ok := compartments()[code]
	return c, ok
}

// Compartments lists the compartment types R4 defines, sorted.
func Compartments() []string {
	out := make([]string, 0, len(compartments()))
	for code := range compartments() {
		out = append(out, code)
	}
	sort.Strings(out)
	return out
}
