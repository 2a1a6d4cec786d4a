package search

import (
	"strings"
	"sync"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Case-insensitive codes (search.html#token, B-TOK-03): matching is
// literal and case-sensitive unless the code system says otherwise, "but
// when in doubt, servers SHOULD match case-insensitively". Kiln does so
// where it can be exact without a folded index: a token parameter over a
// code element with a required binding to an enumerable ValueSet
// (Patient.gender, Observation.status, …). google/fhir parses such a code
// into an enum and refuses any other, so what is stored is always one of
// the ValueSet's codes, written as the ValueSet writes it. A value that
// equals one of them but for case (gender=FEMALE) then also matches that
// code (female): the clause gets the code as one more alternative, so the
// backend's exact token index answers it. Identifiers, Codings and codes
// without such a binding stay case-sensitive (the stored text could be
// anything, and Inferno compares identifiers exactly).

// caseVariants adds, to each value without a system, the codes of the
// parameter's enumerated ValueSet that equal it but for case. Only the
// plain and :not forms: :not then excludes every case of the code.
func caseVariants(l *leaf, vals []Value) []Value {
	if l.typ != Token || (l.modifier != "" && l.modifier != "not") || l.name == "_id" {
		return vals
	}
	out := vals
	for _, v := range vals {
		if v.System != "" || v.Code == "" {
			continue
		}
		lower := strings.ToLower(v.Code)
		for _, prm := range l.params {
			for _, code := range enumCodes(prm.Expression)[lower] {
				if code != v.Code && !containsCode(out, code, v.HasSystem) {
					out = append(out, Value{Raw: v.Raw, Code: code, HasSystem: v.HasSystem})
				}
			}
		}
	}
	return out
}

func containsCode(vals []Value, code string, hasSystem bool) bool {
	for _, v := range vals {
		if v.System == "" && v.Code == code && v.HasSystem == hasSystem {
			return true
		}
	}
	return false
}

// enumCache holds enumCodes by expression.
var enumCache sync.Map // string → map[string][]string

// enumCodes maps the lower-cased codes of the ValueSet an expression's
// element is bound to (required, enumerable) to those codes as written.
// nil when any member of the expression is not such an element, or is not
// a plain path (Patient.gender | Person.gender is; anything with a
// function, a choice type or a cast is not).
func enumCodes(expr string) map[string][]string {
	if m, ok := enumCache.Load(expr); ok {
		return m.(map[string][]string)
	}
	var codes map[string][]string
	for _, member := range strings.Split(expr, "|") {
		vals := enumValues(strings.TrimSpace(member))
		if vals == nil {
			codes = nil
			break
		}
		if codes == nil {
			codes = map[string][]string{}
		}
		for _, c := range vals {
			k := strings.ToLower(c)
			if !containsString(codes[k], c) {
				codes[k] = append(codes[k], c)
			}
		}
	}
	enumCache.Store(expr, codes)
	return codes
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// resources are the R4 resource messages of google/fhir by type name.
var resources = sync.OnceValue(func() map[string]protoreflect.MessageDescriptor {
	m := map[string]protoreflect.MessageDescriptor{}
	fields := (&bcrpb.ContainedResource{}).ProtoReflect().Descriptor().Oneofs().Get(0).Fields()
	for i := range fields.Len() {
		md := fields.Get(i).Message()
		m[string(md.Name())] = md
	}
	return m
})

// enumValues walks a plain path (Type.a.b) through the resource's message
// and returns the codes of the enum its last element holds, or nil.
func enumValues(path string) []string {
	steps := strings.Split(path, ".")
	md := resources()[steps[0]]
	if md == nil || len(steps) < 2 {
		return nil
	}
	for _, name := range steps[1:] {
		if md == nil || !isName(name) {
			return nil
		}
		f := fieldByJSONName(md, name)
		if f == nil || f.Kind() != protoreflect.MessageKind {
			return nil
		}
		md = f.Message()
	}
	v := md.Fields().ByName("value")
	if v == nil || v.Kind() != protoreflect.EnumKind {
		return nil
	}
	var out []string
	ev := v.Enum().Values()
	for i := range ev.Len() {
		e := ev.Get(i)
		if e.Number() == 0 { // INVALID_UNINITIALIZED
			continue
		}
		out = append(out, enumCode(e))
	}
	return out
}

// enumCode is the FHIR code of a google/fhir enum value: its
// fhir_original_code option, else its name lower-cased with '_' as '-'
// (ENTERED_IN_ERROR is entered-in-error), as google/fhir's JSON does.
func enumCode(e protoreflect.EnumValueDescriptor) string {
	if orig, _ := proto.GetExtension(e.Options(), apb.E_FhirOriginalCode).(string); orig != "" {
		return orig
	}
	return strings.ReplaceAll(strings.ToLower(string(e.Name())), "_", "-")
}

func fieldByJSONName(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	fs := md.Fields()
	for i := range fs.Len() {
		if f := fs.Get(i); f.JSONName() == name {
			return f
		}
	}
	return nil
}

func isName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
