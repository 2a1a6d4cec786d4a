package fhirpath

import (
	"encoding/json"
	"strings"
)

// Kiln evaluates over plain JSON, without the StructureDefinitions, so a
// node's FHIR type is known only where the JSON says it: a choice
// element's property suffix (valueQuantity is a Quantity,
// json.html#choice), a resource's resourceType, or the target type of a
// reference read by resolve(). Elsewhere the type is inferred from the
// value itself (see is).

// primitives are the R4 primitive types (datatypes.html#primitive).
var primitives = map[string]bool{
	"base64Binary": true, "boolean": true, "canonical": true, "code": true, "date": true,
	"dateTime": true, "decimal": true, "id": true, "instant": true, "integer": true,
	"markdown": true, "oid": true, "positiveInt": true, "string": true, "time": true,
	"unsignedInt": true, "uri": true, "url": true, "uuid": true, "xhtml": true,
}

// complexTypes are the R4 general-purpose, metadata and special data types.
var complexTypes = map[string]bool{
	"Address": true, "Age": true, "Annotation": true, "Attachment": true, "CodeableConcept": true,
	"Coding": true, "ContactPoint": true, "Count": true, "Distance": true, "Duration": true,
	"HumanName": true, "Identifier": true, "Money": true, "MoneyQuantity": true, "Period": true,
	"Quantity": true, "Range": true, "Ratio": true, "Reference": true, "SampledData": true,
	"Signature": true, "SimpleQuantity": true, "Timing": true, "ContactDetail": true,
	"Contributor": true, "DataRequirement": true, "Expression": true, "ParameterDefinition": true,
	"RelatedArtifact": true, "TriggerDefinition": true, "UsageContext": true, "Dosage": true,
	"Meta": true, "Narrative": true, "Extension": true, "Element": true, "BackboneElement": true,
	"MarketingStatus": true, "Population": true, "ProdCharacteristic": true,
	"ProductShelfLife": true, "SubstanceAmount": true,
}

// choiceSuffix maps a choice property's suffix to its type: "DateTime" →
// "dateTime", "Quantity" → "Quantity" (json.html#choice capitalises the
// first letter of the type code).
var choiceSuffix = func() map[string]string {
	m := map[string]string{}
	for t := range primitives {
		m[strings.ToUpper(t[:1])+t[1:]] = t
	}
	for t := range complexTypes {
		m[t] = t
	}
	return m
}()

// parents holds the specialisations the FHIR type hierarchy has among
// data types: an Age is a Quantity, a code is a string.
var parents = map[string]string{
	"Age": "Quantity", "Count": "Quantity", "Distance": "Quantity", "Duration": "Quantity",
	"MoneyQuantity": "Quantity", "SimpleQuantity": "Quantity",
	"code": "string", "id": "string", "markdown": "string",
	"url": "uri", "canonical": "uri", "oid": "uri", "uuid": "uri",
	"positiveInt": "integer", "unsignedInt": "integer",
}

// systemTypes maps FHIRPath's System types to the FHIR types that carry
// them here.
var systemTypes = map[string]string{
	"String": "string", "Boolean": "boolean", "Integer": "integer", "Decimal": "decimal",
	"Date": "date", "DateTime": "dateTime", "Time": "time", "Quantity": "Quantity",
}

// typeName normalises a type specifier: FHIR.Patient → Patient,
// System.String → string.
func typeName(spec string) string {
	if s, ok := strings.CutPrefix(spec, "FHIR."); ok {
		return s
	}
	if s, ok := strings.CutPrefix(spec, "System."); ok {
		if t, ok := systemTypes[s]; ok {
			return t
		}
		return s
	}
	return spec
}

// isResourceType reports whether a known type name is a resource's (the
// names a node gets from resourceType or resolve()).
func isResourceType(t string) bool {
	return t != "" && t[0] >= 'A' && t[0] <= 'Z' && !complexTypes[t]
}

// is reports whether n is of type t or a specialisation of it.
func (n Node) is(t string) bool {
	known := n.Type
	if known == "" {
		return n.inferredIs(t)
	}
	switch {
	case known == t:
		return true
	case t == "Resource":
		return isResourceType(known)
	case t == "DomainResource":
		return isResourceType(known) && known != "Bundle" && known != "Binary" && known != "Parameters"
	}
	for p := parents[known]; p != ""; p = parents[p] {
		if p == t {
			return true
		}
	}
	return false
}

// inferredIs answers is for a node whose type the JSON does not state.
// Such a node comes from an element that is not a choice, whose type is
// fixed by its definition: a type test on it is either the element's own
// type (an author asserting what it is) or nonsense. So the test checks
// only what the value can show: its JSON kind, and for strings the date
// formats.
func (n Node) inferredIs(t string) bool {
	switch v := n.Value.(type) {
	case bool:
		return t == "boolean"
	case json.Number:
		if t == "decimal" {
			return true
		}
		return (t == "integer" || t == "positiveInt" || t == "unsignedInt") &&
			!strings.ContainsAny(string(v), ".eE")
	case string:
		switch t {
		case "date", "dateTime", "instant":
			return len(v) >= 4 && isDigits(v[:4])
		case "time":
			return len(v) >= 5 && v[2] == ':'
		case "boolean", "integer", "decimal", "positiveInt", "unsignedInt":
			return false
		}
		return primitives[t]
	case map[string]any:
		return complexTypes[t]
	}
	return false
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
