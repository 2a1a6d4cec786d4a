// Package bundle finds and rewrites the references inside FHIR resources
// in JSON, for transactions (http.html#trules: every reference to an
// entry's fullUrl becomes the entry's new identity) and for checks that
// walk stored references.
//
// A resource is decoded once (encoding/json with UseNumber, so decimals
// keep their digits) and every string is visited: `reference` elements
// anywhere (extensions and contained resources included), the other
// strings (uri, url, oid and uuid elements hold fullUrls too), and the
// href/src attributes of the narrative div.
package bundle

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kiln-fhir/kiln/fhir/jsonvalue"
)

// Kind says where a value was found.
type Kind int

const (
	// Reference is the value of a `reference` element (Reference.reference).
	Reference Kind = iota
	// URI is any other string value (uri, url, oid, uuid elements; the
	// caller decides what it rewrites there).
	URI
	// Narrative is an href or src attribute in a narrative div.
	Narrative
)

// Func is called for every value found; it returns the value to keep (the
// same one to leave it alone) or an error that stops the walk.
type Func func(value string, kind Kind) (string, error)

// Rewrite returns resource with every value replaced by what fn returns.
// When fn changes nothing the input is returned as is.
func Rewrite(resource []byte, fn Func) ([]byte, error) {
	out, _, err := RewriteValue(resource, fn)
	return out, err
}

// RewriteValue is Rewrite that also returns the rewritten resource as
// decoded (encoding/json with UseNumber): what decoding the returned bytes
// would give, so that the caller need not decode them again
// (resource.ParseValue).
func RewriteValue(resource []byte, fn Func) ([]byte, any, error) {
	v, err := Decode(resource)
	if err != nil {
		return nil, nil, err
	}
	return RewriteDecoded(resource, v, fn)
}

// RewriteDecoded is RewriteValue for a resource the caller has decoded
// already, with Decode; v is rewritten in place.
func RewriteDecoded(resource []byte, v any, fn Func) ([]byte, any, error) {
	changed := false
	v, err := walk(v, "", func(s string, k Kind) (string, error) {
		out, err := fn(s, k)
		if err == nil && out != s {
			changed = true
		}
		return out, err
	})
	if err != nil {
		return nil, nil, err
	}
	if !changed {
		return resource, v, nil
	}
	out, err := appendJSON(make([]byte, 0, len(resource)+len(resource)/8), v)
	if err != nil {
		return nil, nil, err
	}
	return out, v, nil
}

// appendJSON appends the compact JSON of v, a value Decode returned, keys
// in no particular order: the bytes only go to the parser (which reads
// them into the same value), and a reflection-driven encoding/json took 2%
// of an import's CPU.
func appendJSON(out []byte, v any) ([]byte, error) {
	var err error
	switch v := v.(type) {
	case map[string]any:
		out = append(out, '{')
		first := true
		for k, x := range v {
			if !first {
				out = append(out, ',')
			}
			first = false
			out = appendString(out, k)
			out = append(out, ':')
			if out, err = appendJSON(out, x); err != nil {
				return nil, err
			}
		}
		return append(out, '}'), nil
	case []any:
		out = append(out, '[')
		for i, x := range v {
			if i > 0 {
				out = append(out, ',')
			}
			if out, err = appendJSON(out, x); err != nil {
				return nil, err
			}
		}
		return append(out, ']'), nil
	case string:
		return appendString(out, v), nil
	case json.Number:
		return append(out, v...), nil
	case bool:
		return strconv.AppendBool(out, v), nil
	case nil:
		return append(out, "null"...), nil
	}
	return nil, fmt.Errorf("bundle: cannot encode %T", v)
}

// appendString appends s as a JSON string: as it is when nothing in it
// needs escaping, else as encoding/json writes it.
func appendString(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			b, _ := json.Marshal(s) // a string always encodes
			return append(out, b...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}

// References calls fn with every `reference` value in resource, in no
// particular order.
func References(resource []byte, fn func(ref string)) error {
	v, err := Decode(resource)
	if err != nil {
		return err
	}
	_, err = walk(v, "", func(s string, k Kind) (string, error) {
		if k == Reference {
			fn(s)
		}
		return s, nil
	})
	return err
}

// Decode decodes a resource as the functions of this package do: into
// what encoding/json with UseNumber gives, with fhir/jsonvalue (several
// times faster).
func Decode(resource []byte) (any, error) {
	v, err := jsonvalue.Decode(resource)
	if err != nil {
		return nil, fmt.Errorf("bundle: resource is not JSON: %w", err)
	}
	return v, nil
}

// walk visits v in place; key is the property v is the value of.
func walk(v any, key string, fn Func) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			out, err := walk(x, k, fn)
			if err != nil {
				return nil, err
			}
			v[k] = out
		}
		return v, nil
	case []any:
		for i, x := range v {
			out, err := walk(x, key, fn)
			if err != nil {
				return nil, err
			}
			v[i] = out
		}
		return v, nil
	case string:
		switch key {
		case "reference":
			return fn(v, Reference)
		case "div":
			return rewriteDiv(v, fn)
		}
		return fn(v, URI)
	}
	return v, nil
}

// attr matches href and src attributes in XHTML (narrative.html: the div
// is XHTML, so attributes are quoted).
var attr = regexp.MustCompile(`\b(href|src)\s*=\s*("[^"]*"|'[^']*')`)

func rewriteDiv(div string, fn Func) (string, error) {
	if !strings.Contains(div, "href") && !strings.Contains(div, "src") {
		return div, nil
	}
	var failed error
	out := attr.ReplaceAllStringFunc(div, func(m string) string {
		sub := attr.FindStringSubmatch(m)
		quote := sub[2][:1]
		val := sub[2][1 : len(sub[2])-1]
		got, err := fn(unescape(val), Narrative)
		if err != nil {
			failed = err
			return m
		}
		if got == unescape(val) {
			return m
		}
		return sub[1] + "=" + quote + escape(got) + quote
	})
	return out, failed
}

func unescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&quot;", `"`, "&apos;", "'", "&lt;", "<", "&gt;", ">").Replace(s)
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", `"`, "&quot;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Absolute resolves a relative reference (Type/id, optionally with
// _history) against the fullUrl of the entry that holds it
// (bundle.html#references): in an entry whose fullUrl is
// [base]/Type2/id2, Type/id means [base]/Type/id. ok is false when ref is
// not relative or fullURL is not a RESTful http(s) URL.
func Absolute(fullURL, ref string) (string, bool) {
	if !strings.HasPrefix(fullURL, "http://") && !strings.HasPrefix(fullURL, "https://") {
		return "", false
	}
	if strings.Contains(ref, ":") || strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "/") || strings.Count(ref, "/") < 1 {
		return "", false
	}
	base, ok := Base(fullURL)
	if !ok {
		return "", false
	}
	return base + "/" + ref, true
}

// Base is the service base of a RESTful URL [base]/Type/id (with or
// without _history/vid); ok is false for anything else.
func Base(fullURL string) (string, bool) {
	u := fullURL
	if i := strings.Index(u, "/_history/"); i >= 0 {
		u = u[:i]
	}
	idAt := strings.LastIndexByte(u, '/')
	if idAt <= 0 {
		return "", false
	}
	typeAt := strings.LastIndexByte(u[:idAt], '/')
	if typeAt <= 0 {
		return "", false
	}
	typ := u[typeAt+1 : idAt]
	if typ == "" || typ[0] < 'A' || typ[0] > 'Z' || idAt == len(u)-1 {
		return "", false
	}
	return u[:typeAt], true
}
