// Package jsonvalue decodes JSON into the generic values encoding/json
// gives with UseNumber (map[string]any, []any, string, json.Number, bool,
// nil), and walks the members of objects and the elements of arrays
// without decoding them.
//
// Every write decodes its resource once into such a value (reference
// rewriting, the canonical JSON and index extraction read it) and every
// transaction Bundle or import file is split into its entries; with
// encoding/json those took more CPU than anything else Kiln does besides
// google/fhir's own parse (issue 4, Benchmarks). encoding/json scans the
// input twice (once to validate it, once to decode) and goes through
// reflection; this package scans once, with no reflection, and gives the
// same values: tests compare it with encoding/json on every official
// example and Synthea resource and on hand-written edge cases, and a fuzz
// test on anything.
//
// It is stricter than json.Decoder in one way: nothing but white space
// may follow the value.
package jsonvalue

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"
)

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// SyntaxError is malformed JSON at Offset.
type SyntaxError struct {
	Offset int
	msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at offset %d: %s", e.Offset, e.msg)
}

func syntaxError(at int, msg string) error { return &SyntaxError{Offset: at, msg: msg} }

// Decode returns the value of the JSON document data, as encoding/json
// with UseNumber decodes it into an any.
func Decode(data []byte) (any, error) {
	d := decoder{b: data, names: names.Get().(map[string]string)}
	defer names.Put(d.names)
	i := skipSpace(data, 0)
	v, i, err := d.value(i, 0)
	if err != nil {
		return nil, err
	}
	if i = skipSpace(data, i); i != len(data) {
		return nil, syntaxError(i, "data after the value")
	}
	return v, nil
}

type decoder struct {
	b     []byte
	names map[string]string // from the pool names
}

// names holds the property names decoded before, for Decode to reuse
// rather than allocate again: FHIR JSON repeats a few hundred names
// ("system", "code", "reference") thousands of times, and a string per
// name was a third of a decode's allocations. Each map holds at most
// maxNames, whatever the input.
var names = sync.Pool{New: func() any { return make(map[string]string, 256) }}

const maxNames = 4096

// value decodes the value at b[i] (no white space before it) and returns
// the offset after it.
func (d *decoder) value(i, depth int) (any, int, error) {
	b := d.b
	if i >= len(b) {
		return nil, i, syntaxError(i, "unexpected end")
	}
	switch c := b[i]; {
	case c == '{':
		if depth == maxDepth {
			return nil, i, syntaxError(i, "nested too deeply")
		}
		return d.object(i, depth+1)
	case c == '[':
		if depth == maxDepth {
			return nil, i, syntaxError(i, "nested too deeply")
		}
		return d.array(i, depth+1)
	case c == '"':
		s, end, err := d.str(i)
		if err != nil {
			return nil, i, err
		}
		return s, end, nil
	case c == '-' || '0' <= c && c <= '9':
		end, err := number(b, i)
		if err != nil {
			return nil, i, err
		}
		return json.Number(b[i:end]), end, nil
	case c == 't' || c == 'f' || c == 'n':
		end, err := literal(b, i)
		if err != nil {
			return nil, i, err
		}
		switch c {
		case 't':
			return true, end, nil
		case 'f':
			return false, end, nil
		}
		return nil, end, nil
	}
	return nil, i, syntaxError(i, fmt.Sprintf("unexpected %q", b[i]))
}

// literal returns the offset after the true, false or null at b[i].
func literal(b []byte, i int) (int, error) {
	word := "null"
	switch b[i] {
	case 't':
		word = "true"
	case 'f':
		word = "false"
	}
	if len(b)-i >= len(word) && string(b[i:i+len(word)]) == word {
		return i + len(word), nil
	}
	return i, syntaxError(i, "invalid literal")
}

func (d *decoder) object(i, depth int) (any, int, error) {
	b := d.b
	m := map[string]any{}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return m, i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, i, syntaxError(i, "expected a property name")
		}
		k, j, err := d.name(i)
		if err != nil {
			return nil, i, err
		}
		if j = skipSpace(b, j); j >= len(b) || b[j] != ':' {
			return nil, j, syntaxError(j, "expected ':'")
		}
		v, j, err := d.value(skipSpace(b, j+1), depth)
		if err != nil {
			return nil, j, err
		}
		m[k] = v
		switch i = skipSpace(b, j); {
		case i >= len(b):
			return nil, i, syntaxError(i, "unexpected end")
		case b[i] == ',':
			i = skipSpace(b, i+1)
		case b[i] == '}':
			return m, i + 1, nil
		default:
			return nil, i, syntaxError(i, "expected ',' or '}'")
		}
	}
}

func (d *decoder) array(i, depth int) (any, int, error) {
	b := d.b
	a := make([]any, 0)
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return a, i + 1, nil
	}
	for {
		v, j, err := d.value(i, depth)
		if err != nil {
			return nil, j, err
		}
		a = append(a, v)
		switch i = skipSpace(b, j); {
		case i >= len(b):
			return nil, i, syntaxError(i, "unexpected end")
		case b[i] == ',':
			i = skipSpace(b, i+1)
		case b[i] == ']':
			return a, i + 1, nil
		default:
			return nil, i, syntaxError(i, "expected ',' or ']'")
		}
	}
}

// name decodes the property name at b[i] == '"', reusing the string of an
// earlier one.
func (d *decoder) name(i int) (string, int, error) {
	end, plain, err := stringEnd(d.b, i)
	if err != nil || !plain || d.names == nil {
		return d.str(i)
	}
	raw := d.b[i+1 : end-1]
	if s, ok := d.names[string(raw)]; ok {
		return s, end, nil
	}
	s := string(raw)
	if len(d.names) < maxNames {
		d.names[s] = s
	}
	return s, end, nil
}

// str decodes the string at b[i] == '"'.
func (d *decoder) str(i int) (string, int, error) {
	end, plain, err := stringEnd(d.b, i)
	if err != nil {
		return "", i, err
	}
	raw := d.b[i+1 : end-1]
	if plain || !hasEscape(raw) && utf8.Valid(raw) {
		return string(raw), end, nil
	}
	// Escapes, or invalid UTF-8 (which encoding/json replaces with
	// U+FFFD): rare, so encoding/json itself decodes them.
	var s string
	if err := json.Unmarshal(d.b[i:end], &s); err != nil {
		return "", i, syntaxError(i, err.Error())
	}
	return s, end, nil
}

func hasEscape(raw []byte) bool {
	for _, c := range raw {
		if c == '\\' {
			return true
		}
	}
	return false
}

// stringEnd returns the offset after the string at b[i] == '"', and
// whether it is plain: ASCII without escapes, its bytes its value.
func stringEnd(b []byte, i int) (end int, plain bool, err error) {
	plain = true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, plain, nil
		case c == '\\':
			plain = false
			j++
			if j >= len(b) {
				return 0, false, syntaxError(i, "unterminated string")
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-j < 5 || !hex4(b[j+1:j+5]) {
					return 0, false, syntaxError(j, "invalid \\u escape")
				}
				j += 4
			default:
				return 0, false, syntaxError(j, "invalid escape")
			}
		case c < 0x20:
			return 0, false, syntaxError(j, "control character in string")
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return 0, false, syntaxError(i, "unterminated string")
}

func hex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// number returns the offset after the number at b[i]
// (json.org: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?).
func number(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		return 0, syntaxError(start, "invalid number")
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return 0, syntaxError(start, "invalid number")
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return 0, syntaxError(start, "invalid number")
		}
		i = j
	}
	return i, nil
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skip returns the offset after the value at b[i] (no white space before
// it), checking its syntax without decoding it.
func skip(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, syntaxError(i, "unexpected end")
	}
	switch c := b[i]; {
	case c == '{' || c == '[':
		if depth == maxDepth {
			return i, syntaxError(i, "nested too deeply")
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		j := skipSpace(b, i+1)
		if j < len(b) && b[j] == closer {
			return j + 1, nil
		}
		for {
			if c == '{' {
				if j >= len(b) || b[j] != '"' {
					return j, syntaxError(j, "expected a property name")
				}
				end, _, err := stringEnd(b, j)
				if err != nil {
					return j, err
				}
				if j = skipSpace(b, end); j >= len(b) || b[j] != ':' {
					return j, syntaxError(j, "expected ':'")
				}
				j = skipSpace(b, j+1)
			}
			end, err := skip(b, j, depth+1)
			if err != nil {
				return end, err
			}
			switch j = skipSpace(b, end); {
			case j >= len(b):
				return j, syntaxError(j, "unexpected end")
			case b[j] == ',':
				j = skipSpace(b, j+1)
			case b[j] == closer:
				return j + 1, nil
			default:
				return j, syntaxError(j, fmt.Sprintf("expected ',' or '%c'", closer))
			}
		}
	case c == '"':
		end, _, err := stringEnd(b, i)
		return end, err
	case c == '-' || '0' <= c && c <= '9':
		return number(b, i)
	case c == 't', c == 'f', c == 'n':
		return literal(b, i)
	}
	return i, syntaxError(i, fmt.Sprintf("unexpected %q", b[i]))
}

// ErrNotObject is returned by Members for JSON that is not an object.
var ErrNotObject = errors.New("jsonvalue: not a JSON object")

// ErrNotArray is returned by Elements for JSON that is not an array.
var ErrNotArray = errors.New("jsonvalue: not a JSON array")

// Members calls fn with each member of the JSON object obj, in order: its
// name (decoded) and its value's bytes (a subslice of obj, not decoded).
// The whole of obj is checked to be well-formed JSON; an error from fn
// stops the walk and is returned.
func Members(obj []byte, fn func(name string, value []byte) error) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		if _, err := checkOne(obj); err != nil {
			return err
		}
		return ErrNotObject
	}
	d := decoder{b: obj}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return trailing(obj, i+1)
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return syntaxError(i, "expected a property name")
		}
		k, j, err := d.str(i)
		if err != nil {
			return err
		}
		if j = skipSpace(obj, j); j >= len(obj) || obj[j] != ':' {
			return syntaxError(j, "expected ':'")
		}
		start := skipSpace(obj, j+1)
		end, err := skip(obj, start, 1)
		if err != nil {
			return err
		}
		if err := fn(k, obj[start:end]); err != nil {
			return err
		}
		switch i = skipSpace(obj, end); {
		case i >= len(obj):
			return syntaxError(i, "unexpected end")
		case obj[i] == ',':
			i = skipSpace(obj, i+1)
		case obj[i] == '}':
			return trailing(obj, i+1)
		default:
			return syntaxError(i, "expected ',' or '}'")
		}
	}
}

// Elements calls fn with the bytes of each element of the JSON array arr,
// in order. The whole of arr is checked to be well-formed JSON; an error
// from fn stops the walk and is returned.
func Elements(arr []byte, fn func(i int, value []byte) error) error {
	i := skipSpace(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		if _, err := checkOne(arr); err != nil {
			return err
		}
		return ErrNotArray
	}
	i = skipSpace(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return trailing(arr, i+1)
	}
	for n := 0; ; n++ {
		end, err := skip(arr, i, 1)
		if err != nil {
			return err
		}
		if err := fn(n, arr[i:end]); err != nil {
			return err
		}
		switch i = skipSpace(arr, end); {
		case i >= len(arr):
			return syntaxError(i, "unexpected end")
		case arr[i] == ',':
			i = skipSpace(arr, i+1)
		case arr[i] == ']':
			return trailing(arr, i+1)
		default:
			return syntaxError(i, "expected ',' or ']'")
		}
	}
}

// Valid reports whether data is one well-formed JSON value, as json.Valid
// does.
func Valid(data []byte) bool {
	_, err := checkOne(data)
	return err == nil
}

// checkOne checks that data is one JSON value and returns its first byte's
// offset.
func checkOne(data []byte) (int, error) {
	i := skipSpace(data, 0)
	end, err := skip(data, i, 0)
	if err != nil {
		return i, err
	}
	return i, trailing(data, end)
}

func trailing(b []byte, i int) error {
	if i = skipSpace(b, i); i != len(b) {
		return syntaxError(i, "data after the value")
	}
	return nil
}

// String decodes value, a JSON string or null (""), as encoding/json
// decodes it into a Go string; any other value is an error.
func String(value []byte) (string, error) {
	v, err := Decode(value)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case nil:
		return "", nil
	}
	return "", errNotString
}

var errNotString = errors.New("jsonvalue: not a JSON string")
