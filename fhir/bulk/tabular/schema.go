// Package tabular writes FHIR resources as Parquet: one file per resource
// type, with a columnar schema derived from the R4 element definitions,
// so that an analyst loads an export straight into DuckDB, Spark or
// pandas (issue 6, "Beyond the IG": the SQL-on-FHIR analytics shape).
//
// The element tree comes from google/fhir's R4 protocol buffers, which
// are generated from the official StructureDefinitions and already
// compiled into Kiln (fhir/resource parses with them): every resource,
// backbone element and data type, each element's cardinality and each
// choice element's types. The schema of a type is:
//
//   - one column per element, named as in FHIR JSON (code, subject,
//     effectiveDateTime); complex types and backbone elements are nested
//     groups (code.coding.code), 0..* elements are repeated;
//   - a choice element value[x] is one column per allowed type
//     (valueQuantity, valueString, …), as in FHIR JSON;
//   - primitives are typed: boolean as BOOLEAN, integer, positiveInt and
//     unsignedInt as INT32; everything else as a UTF-8 string holding the
//     JSON value verbatim. decimal is a string too: the exact digits of the
//     resource ("72.50" stays "72.50"; CAST it where a number is wanted),
//     because FHIR decimals carry their precision and no one DECIMAL(p,s)
//     fits every value. Dates, dateTimes and instants stay strings because
//     FHIR allows partial dates ("2024", "2024-05");
//   - Reference is {reference, type, identifier, display};
//   - nesting stops at MaxDepth groups: an element deeper than that (the
//     recursion of Identifier.assigner → Reference.identifier → …,
//     Questionnaire.item.item) is one JSON column holding that element as
//     it is in the resource; so are extensions below the resource level
//     (extension, modifierExtension: lists of JSON objects), contained
//     resources and resources inside Bundle or Parameters;
//   - element ids (the id of a data type or backbone element) and the
//     extensions of primitives (_birthDate) have no column;
//   - resource_json holds the resource exactly as exported to NDJSON
//     (JSON logical type), so nothing is lost to the flattening.
package tabular

import (
	"fmt"
	"strings"
	"sync"
	"unicode"

	"github.com/parquet-go/parquet-go"
	"google.golang.org/protobuf/reflect/protoreflect"

	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// MaxDepth is how many groups deep the schema nests below the resource:
// deep enough for Observation.component.code.coding.code and
// Patient.contact.name.given, and small enough that the widest resource
// stays at a few thousand columns.
const MaxDepth = 3

// JSONColumn is the column holding each resource's whole JSON.
const JSONColumn = "resource_json"

// core is the proto package of the R4 data types.
const core = "google.fhir.r4.core."

// resources maps each R4 resource type to its proto message.
var resources = sync.OnceValue(func() map[string]protoreflect.MessageDescriptor {
	m := map[string]protoreflect.MessageDescriptor{}
	od := (&bcrpb.ContainedResource{}).ProtoReflect().Descriptor().Oneofs().ByName("oneof_resource")
	for i := 0; i < od.Fields().Len(); i++ {
		md := od.Fields().Get(i).Message()
		m[string(md.Name())] = md
	}
	return m
})

var (
	schemaMu sync.Mutex
	schemas  = map[string]*parquet.Schema{}
)

// Schema returns the Parquet schema of an R4 resource type, or an error
// when typ is not one. Schemas are built once and shared.
func Schema(typ string) (*parquet.Schema, error) {
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := schemas[typ]; ok {
		return s, nil
	}
	md, ok := resources()[typ]
	if !ok {
		return nil, fmt.Errorf("tabular: %q is not an R4 resource type", typ)
	}
	g := group(md, 0, true)
	g[JSONColumn] = parquet.JSON()
	s := parquet.NewSchema(typ, g)
	schemas[typ] = s
	return s, nil
}

// group is the columns of a resource, backbone element or complex data
// type at depth (0: the resource's own elements).
func group(md protoreflect.MessageDescriptor, depth int, resource bool) parquet.Group {
	g := parquet.Group{}
	if md.FullName() == core+"Reference" {
		// google/fhir holds the reference as a oneof of typed ids; FHIR
		// JSON has one string.
		g["reference"] = parquet.Optional(parquet.String())
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		name := f.JSONName()
		switch {
		case f.ContainingOneof() != nil && md.FullName() == core+"Reference":
			continue // the reference string, above
		case name == "id" && !resource:
			continue // element ids: no analytical meaning (resource_json has them)
		case f.Kind() != protoreflect.MessageKind:
			continue // not an element (google/fhir bookkeeping)
		}
		elem := f.Message()
		if choice := elem.Oneofs().ByName("choice"); choice != nil {
			for j := 0; j < choice.Fields().Len(); j++ {
				cf := choice.Fields().Get(j)
				// Extension.value[x] allows fifty types: the common ones
				// are columns, the rest JSON.
				asJSON := md.FullName() == core+"Extension" && !extensionValues[cf.Message().FullName()]
				g[name+upperFirst(cf.JSONName())] = cardinality(f, column(cf.Message(), depth, asJSON))
			}
			continue
		}
		asJSON := false
		switch {
		case name == "extension" || name == "modifierExtension":
			if depth > 0 && dataType(md) && md.FullName() != core+"Extension" {
				// A data type's extensions (code.coding.extension) would
				// double the columns for what is rare in analytics;
				// resource_json has them.
				continue
			}
			// The resource's extensions are columns (url, valueCoding, …);
			// those of backbone elements, and extensions of extensions,
			// are a list of JSON objects.
			asJSON = depth > 0
		case name == "identifier" && md.FullName() == core+"Reference":
			// Reference.identifier → Identifier.assigner → Reference …:
			// a logical reference is rare; one JSON column.
			asJSON = true
		}
		g[name] = cardinality(f, column(elem, depth, asJSON))
	}
	return g
}

// column is the node of one element of type md, inside a group at depth.
func column(md protoreflect.MessageDescriptor, depth int, asJSON bool) parquet.Node {
	switch md.FullName() {
	case "google.protobuf.Any", // contained
		core + "ContainedResource": // Bundle.entry.resource, Parameters.parameter.resource
		return parquet.JSON()
	}
	if leaf, ok := primitive(md); ok {
		return leaf
	}
	if asJSON || depth+1 > MaxDepth {
		return parquet.JSON()
	}
	return group(md, depth+1, false)
}

// primitive returns the leaf of a FHIR primitive type: a message whose
// value is a scalar (value, or value_us for dates and times).
func primitive(md protoreflect.MessageDescriptor) (parquet.Node, bool) {
	v := md.Fields().ByName("value")
	if v == nil {
		v = md.Fields().ByName("value_us")
	}
	if v == nil || v.Kind() == protoreflect.MessageKind {
		return nil, false
	}
	switch md.FullName() {
	case core + "Boolean":
		return parquet.Leaf(parquet.BooleanType), true
	case core + "Integer", core + "PositiveInt", core + "UnsignedInt":
		return parquet.Int(32), true
	}
	return parquet.String(), true
}

// extensionValues are the types of Extension.value[x] given columns in
// the resource's extension and modifierExtension: the primitives and
// these (US Core's extensions use them).
var extensionValues = map[protoreflect.FullName]bool{
	core + "Coding": true, core + "CodeableConcept": true, core + "Quantity": true,
	core + "Reference": true, core + "Period": true, core + "Identifier": true,
}

// dataType reports whether md is a data type, not a resource or one of
// its backbone elements (which google/fhir nests in the resource).
func dataType(md protoreflect.MessageDescriptor) bool {
	_, nested := md.Parent().(protoreflect.MessageDescriptor)
	return !nested && resources()[string(md.Name())] == nil
}

func cardinality(f protoreflect.FieldDescriptor, n parquet.Node) parquet.Node {
	if f.IsList() {
		return parquet.Repeated(n)
	}
	return parquet.Optional(n)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// Columns lists the leaf column paths of typ's schema, dot-separated.
func Columns(typ string) ([]string, error) {
	s, err := Schema(typ)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range s.Columns() {
		out = append(out, strings.Join(p, "."))
	}
	return out, nil
}
