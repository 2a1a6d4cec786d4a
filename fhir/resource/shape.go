package resource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/jsonvalue"
	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// maxDepth bounds how deeply objects and arrays may nest in a body. The
// deepest official example nests 16 levels and google/fhir stops at 64
// elements (about 128 JSON levels); checking here, in one flat loop before
// any recursive parser runs, turns hostile nesting into a quick 400.
const maxDepth = 128

// checkShape rejects what google/fhir would accept but FHIR JSON forbids,
// before the expensive parse. A body that is not one well-formed JSON
// object, or nests too deeply, is a fatal error. Duplicate keys
// (json.html: "there are no duplicate properties"), property names that are
// not FHIR's ("BirthDate": google/fhir accepts it for birthDate) and nulls
// outside arrays (json.html#primitive allows null only as a placeholder in
// an array of primitives) are returned as issues, so that Parse can report
// them together with google/fhir's.
//
// decoded says the caller has decoded body already (ParseValue), so that
// it is well-formed JSON and need not be scanned for that again.
func checkShape(body []byte, decoded bool) (issues []outcome.Issue, err error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure, "empty body: a FHIR resource is required")
	}
	if b[0] != '{' {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure, "body is not a JSON object: a FHIR resource is a JSON object with a resourceType")
	}
	if !decoded && !jsonvalue.Valid(b) {
		var v any
		err := json.Unmarshal(b, &v)
		return nil, outcome.Newf(http.StatusBadRequest, outcome.CodeStructure, "malformed JSON: %v", err)
	}

	// b is valid JSON from here on: the loop only tracks where it is.
	var typ string // the top-level resourceType, which roots the expressions
	stack := make([]frame, 0, 32)
	report := func(msg string) {
		issues = append(issues, outcome.Issue{
			Severity: outcome.SevError, Code: outcome.CodeStructure,
			Diagnostics: msg, Expression: []string{pathOf(stack)},
		})
	}
	for i := 0; i < len(b); {
		switch c := b[i]; c {
		case '{', '[':
			if len(stack) == maxDepth {
				return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure,
					fmt.Sprintf("JSON nests deeper than %d levels", maxDepth), prefixed(typ, pathOf(stack)))
			}
			// Reuse the frames (and their key slices) of closed containers.
			if len(stack) < cap(stack) {
				stack = stack[:len(stack)+1]
			} else {
				stack = append(stack, frame{})
			}
			f := &stack[len(stack)-1]
			f.array, f.index, f.key, f.keys, f.set = c == '[', 0, nil, f.keys[:0], nil
			i++
		case '}', ']':
			stack = stack[:len(stack)-1]
			i++
		case ',':
			if f := &stack[len(stack)-1]; f.array {
				f.index++
			}
			i++
		case '"':
			end := stringEnd(b, i)
			f := &stack[len(stack)-1]
			if f.array {
				if end == i+2 {
					report(emptyString)
				}
				i = end
				break
			}
			// In an object a string is a key if a ':' follows it.
			j := skipSpace(b, end)
			if b[j] != ':' {
				if end == i+2 {
					report(emptyString)
				}
				i = end
				break
			}
			key := b[i+1 : end-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				var s string
				json.Unmarshal(b[i:end], &s) // valid JSON: cannot fail
				key = []byte(s)
			}
			f.key = key
			switch {
			case f.has(key):
				report(fmt.Sprintf("duplicate property %q", key))
			case !isPropertyName(key):
				report(fmt.Sprintf("unknown element %q", key))
			}
			f.add(key)
			i = skipSpace(b, j+1)
			if len(stack) == 1 && string(key) == "resourceType" && b[i] == '"' {
				end := stringEnd(b, i)
				json.Unmarshal(b[i:end], &typ) // valid JSON: cannot fail
				i = end
			}
		case 'n': // null: the only bare word starting with n
			if !stack[len(stack)-1].array {
				report("null is not allowed in FHIR JSON")
			}
			i += len("null")
		default:
			i++
		}
	}
	for k := range issues {
		issues[k].Expression[0] = prefixed(typ, issues[k].Expression[0])
	}
	return issues, nil
}

// emptyString: "" is no value, and every FHIR element must have a value
// or children (invariant ele-1; every R4 primitive's regex needs a
// character). google/fhir drops some empty values silently (an empty
// code), which would store a resource missing what the body seemed to
// give, so the body is refused instead.
const emptyString = "empty string: a FHIR element must have a value or be left out (ele-1)"

// frame is one open object or array while checkShape walks a body.
type frame struct {
	array bool
	index int      // array: the current element
	key   []byte   // object: the current property
	keys  [][]byte // object: the properties seen so far
	// set holds keys once there are too many to search one by one (no
	// FHIR object has that many; a hostile one would make it quadratic).
	set map[string]bool
}

const maxKeysScanned = 64

func (f *frame) has(key []byte) bool {
	if f.set != nil {
		return f.set[string(key)]
	}
	for _, k := range f.keys {
		if bytes.Equal(k, key) {
			return true
		}
	}
	return false
}

func (f *frame) add(key []byte) {
	switch {
	case f.set != nil:
		f.set[string(key)] = true
	case len(f.keys) < maxKeysScanned:
		f.keys = append(f.keys, key)
	default:
		f.set = make(map[string]bool, 2*maxKeysScanned)
		for _, k := range f.keys {
			f.set[string(k)] = true
		}
		f.set[string(key)] = true
	}
}

// pathOf renders the position of the innermost property as a FHIRPath
// (relative to the resource): name[0].given.
func pathOf(stack []frame) string {
	var sb strings.Builder
	for _, f := range stack {
		if f.array {
			sb.WriteString("[" + strconv.Itoa(f.index) + "]")
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		sb.Write(f.key)
	}
	return sb.String()
}

// prefixed roots a relative path at the resource type, when it is known.
func prefixed(typ, path string) string {
	switch {
	case typ == "" || !IsType(typ):
		return path
	case path == "":
		return typ
	}
	return typ + "." + path
}

// isPropertyName reports whether k can name a FHIR JSON property:
// lowerCamel element names, "_" + one for a primitive's id and extensions.
func isPropertyName(k []byte) bool {
	if len(k) > 0 && k[0] == '_' {
		k = k[1:]
	}
	if len(k) == 0 || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for _, c := range k[1:] {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// stringEnd returns the offset just after the JSON string starting at
// b[i] == '"'; b must be valid JSON.
func stringEnd(b []byte, i int) int {
	end, _ := scanString(b, i)
	return end
}

// scanString is stringEnd for any input: ok is false, and end len(b), when
// the string is not closed.
func scanString(b []byte, i int) (end int, ok bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return len(b), false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
