package resource

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Canonical JSON from the request body. google/fhir's marshaller builds a
// map per object and hands it to encoding/json (SetEscapeHTML(false)), so
// its output is the compact JSON of the values it unmarshalled, keys in
// byte order. For a body it accepted, that is the body's own values
// re-encoded the same way, except where google/fhir normalises a value on
// the way through its protos. Encoding the decoded body (appendCanonical)
// costs a fraction of the proto marshal (20% of an import's CPU, issue 4),
// so Parse uses it whenever the body holds none of those values and falls
// back to the marshal otherwise. The normalisations, found by comparing
// both over hand-written edge cases (TestCanonicalEdgeCases) on top of
// every official example and Synthea resource (TestStampSplice):
//
//   - a fractional second of other than 3 or 6 digits (dateTime, instant,
//     time) is padded or cut to milliseconds or microseconds;
//   - a "-00:00" timezone becomes "+00:00";
//   - an integer written -0 becomes 0;
//   - a Reference.reference's own extensions (_reference) are dropped;
//   - an empty array is dropped;
//   - a choice element's value ("deceasedBoolean") is dropped when its
//     primitive extensions ("_deceasedBoolean") are given;
//   - a primitive given as an empty object or string is dropped;
//   - an enum-held code is read case-insensitively and written in its
//     own spelling (enumKeys).
//
// appendCanonical refuses a superset of these, conservatively: any string
// with such a fraction or ending in -00:00 (a narrative that mentions one
// only costs the slow path), the number -0 (a decimal -0 would keep its
// text, but it is rare), any _reference key, any empty array, object or
// string, any enum-held code (enumKeys) with an upper-case letter or
// underscore, any _ key ending in the name of a primitive type (a choice
// element's, or one such as _birthDate that only looks like it). Decimals keep their text
// otherwise, exponent included; an integer with an exponent or a fraction
// does not parse.

// appendCanonical appends the compact JSON of v, a value decoded by
// encoding/json with UseNumber, with object keys in byte order, as
// encoding/json with SetEscapeHTML(false) would. ok is false when v holds
// a value google/fhir would write differently (above): out is then
// incomplete and must not be used.
func appendCanonical(out []byte, v any) (_ []byte, ok bool) {
	switch v := v.(type) {
	case map[string]any:
		return appendObject(out, v, nil)
	case []any:
		if len(v) == 0 {
			return out, false
		}
		out = append(out, '[')
		for i, x := range v {
			if i > 0 {
				out = append(out, ',')
			}
			if out, ok = appendCanonical(out, x); !ok {
				return out, false
			}
		}
		return append(out, ']'), true
	case string:
		if v == "" || normalised(v) {
			return out, false
		}
		return appendString(out, v), true
	case json.Number:
		if v == "-0" { // an integer's; a decimal keeps its text
			return out, false
		}
		return append(out, v...), true
	case bool:
		if v {
			return append(out, "true"...), true
		}
		return append(out, "false"...), true
	case nil:
		return append(out, "null"...), true
	}
	return out, false // not a decoded JSON value
}

// appendObject is appendCanonical of an object; mark, when not nil, is
// told where each property's value went: out[start:end].
func appendObject(out []byte, v map[string]any, mark func(key string, start, end int)) (_ []byte, ok bool) {
	if len(v) == 0 {
		return out, false
	}
	var stack [48]string
	keys := stack[:0]
	enums := enumKeys()
	for k, x := range v {
		if k == "_reference" || k[0] == '_' && choiceSuffix(k) {
			return out, false
		}
		if enums[k] && !lowerCode(x) {
			return out, false
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out = append(out, '{')
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendString(out, k)
		out = append(out, ':')
		start := len(out)
		if out, ok = appendCanonical(out, v[k]); !ok {
			return out, false
		}
		if mark != nil {
			mark(k, start, len(out))
		}
	}
	return append(out, '}'), true
}

// normalised reports whether google/fhir might write s differently, were
// it a date, dateTime, instant or time: a fraction of a second of other
// than 3 or 6 digits, or the timezone -00:00.
func normalised(s string) bool {
	if strings.HasSuffix(s, "-00:00") {
		return true
	}
	// hh:mm:ss.f…: a '.' after two digits, ':', two digits.
	for i := strings.IndexByte(s, '.'); i >= 0; {
		if i >= 5 && s[i-3] == ':' && digit(s[i-1]) && digit(s[i-2]) && digit(s[i-4]) && digit(s[i-5]) {
			n := 0
			for i+1+n < len(s) && digit(s[i+1+n]) {
				n++
			}
			if n != 3 && n != 6 {
				return true
			}
		}
		j := strings.IndexByte(s[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return false
}

func digit(c byte) bool { return '0' <= c && c <= '9' }

// enumKeys are the JSON names of the elements google/fhir holds as an
// enum (codes with a required binding: status, gender, use, …), in any
// type. It reads such a code case-insensitively, with _ for -, and writes
// the enum's own spelling ("finAl" comes back "final"); the body path
// leaves to the marshal a value of these names that has an upper-case
// letter or an underscore (lowerCode), though most are free-text codes of
// the same name elsewhere and would come back as they are.
var enumKeys = sync.OnceValue(func() map[string]bool {
	enum, other := map[string]bool{}, map[string]bool{}
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			f := fields.Get(i)
			if f.Kind() != protoreflect.MessageKind {
				continue
			}
			if vf := f.Message().Fields().ByName("value"); vf != nil && vf.Kind() == protoreflect.EnumKind {
				enum[f.JSONName()] = true
			} else {
				other[f.JSONName()] = true
			}
			walk(f.Message())
		}
	}
	walk((&bcrpb.ContainedResource{}).ProtoReflect().Descriptor())
	// Only names that are enums wherever they occur (gender, intent, …),
	// and status, an enum nearly everywhere: the others (system, code,
	// type, target, …) are free strings or structures in most places, where
	// upper case is common. An enum of such a name in the wrong case is
	// stored as sent, a known gap of the body path.
	for k := range enum {
		if other[k] && k != "status" {
			delete(enum, k)
		}
	}
	delete(enum, "resourceType") // read exactly or not at all
	return enum
})

// lowerCode reports whether v, the value of an enumKeys element (a string,
// or an array of them), has no upper-case letter or underscore.
func lowerCode(v any) bool {
	switch v := v.(type) {
	case string:
		return !strings.ContainsFunc(v, func(r rune) bool { return r == '_' || 'A' <= r && r <= 'Z' })
	case []any:
		for _, x := range v {
			if !lowerCode(x) {
				return false
			}
		}
	}
	return true
}

// primitiveTypes are the suffixes of choice elements of primitive type
// ("valueString", "deceasedBoolean", "effectiveDateTime").
var primitiveTypes = [...]string{"Base64Binary", "Boolean", "Canonical", "Code", "Date", "DateTime", "Decimal",
	"Id", "Instant", "Integer", "Markdown", "Oid", "PositiveInt", "String", "Time", "UnsignedInt", "Uri", "Url", "Uuid"}

// choiceSuffix reports whether key ends in the name of a primitive type
// after at least one lower-case letter: it may name a choice element.
func choiceSuffix(key string) bool {
	for _, t := range primitiveTypes {
		if len(key) > len(t)+1 && strings.HasSuffix(key, t) {
			return true
		}
	}
	return false
}

// appendString appends s as a JSON string exactly as encoding/json with
// SetEscapeHTML(false) writes it. Strings with nothing to escape, nearly
// all, are copied; the others go through encoding/json itself.
func appendString(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			if !plainUTF8(s[i:]) {
				return appendEscaped(out, s)
			}
			break
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}

// plainUTF8 reports whether s needs no escaping: valid UTF-8 without
// control characters, quotes, backslashes, U+2028 or U+2029 (which
// encoding/json escapes).
func plainUTF8(s string) bool {
	for _, r := range s {
		switch {
		case r < 0x20, r == '"', r == '\\', r == utf8.RuneError, r == '\u2028', r == '\u2029':
			return false
		}
	}
	return true
}

func appendEscaped(out []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(out, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
