package resource

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kiln-fhir/kiln/conformance/defs"
	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// subsetted is the tag a server puts on a resource it did not return whole
// (search.html#summary, search.html#elements). Its keys are in the
// canonical (alphabetical) order.
const subsetted = `{"code":"SUBSETTED","system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue"}`

// Summary applies _summary=mode (search.html#summary) to a stored resource
// and tags the result SUBSETTED when something was left out:
//
//   - true: the elements the definition marks isSummary, plus the
//     mandatory ones (and resourceType, id, meta);
//   - text: text, id, meta and the mandatory elements;
//   - data: everything but text;
//   - false: the resource as it is.
//
// It works on the JSON, keeping every remaining property's bytes (decimal
// text included), and only on top-level elements: a summary element is
// kept whole. body must be one JSON object with a resourceType, as Stamp
// writes; when nothing is left out it is returned as it is.
// _summary=count is for searches and is rejected here, as is any unknown
// mode, with a 400 *outcome.Error.
func Summary(body []byte, mode string) ([]byte, error) {
	var keep func(def *defs.Resource, property string) bool
	switch mode {
	case "false":
		return body, nil
	case "true":
		keep = func(def *defs.Resource, p string) bool {
			el, ok := def.Element(p)
			return ok && (el.Summary || el.Required())
		}
	case "text":
		keep = func(def *defs.Resource, p string) bool {
			el, ok := def.Element(p)
			return p == "text" || ok && el.Required()
		}
	case "data":
		keep = func(_ *defs.Resource, p string) bool { return p != "text" }
	case "count":
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeNotSupported, "_summary=count applies to searches, not to a single resource")
	default:
		return nil, outcome.Newf(http.StatusBadRequest, outcome.CodeInvalid, "unknown _summary %q: use true, text, data, count or false", mode)
	}
	return subset(body, keep)
}

// Elements applies _elements=names (search.html#elements) to a stored
// resource: it keeps the named top-level elements, the mandatory ones and
// resourceType, id and meta, and tags the result SUBSETTED when something
// was left out. A name may carry its resource type ("Patient.name", as
// bulk export's _elements does; a name for another type is ignored) and a
// choice element may be named by its base ("value", "value[x]") or by one
// of its types ("valueQuantity"). Names of no element are ignored. Like
// Summary, it keeps the remaining properties' bytes.
func Elements(body []byte, names []string) ([]byte, error) {
	return subset(body, func(def *defs.Resource, p string) bool {
		el, known := def.Element(p)
		if known && el.Required() {
			return true
		}
		for _, n := range names {
			n = strings.TrimSpace(n)
			if i := strings.IndexByte(n, '.'); i >= 0 {
				if n[:i] != def.Type {
					continue
				}
				n = n[i+1:]
			}
			if n != "" && (p == n || p == "_"+n || known && (el.Name == n || el.Base() == n)) {
				return true
			}
		}
		return false
	})
}

// subset keeps the top-level properties keep accepts, and always
// resourceType, id and meta; when it leaves any out, it tags meta
// SUBSETTED (adding a meta if there is none).
func subset(body []byte, keep func(def *defs.Resource, property string) bool) ([]byte, error) {
	props, err := properties(body)
	if err != nil {
		return nil, fmt.Errorf("resource: subset: %w", err)
	}
	var typ string
	for _, p := range props {
		if p.key == "resourceType" {
			// Type names need no escapes: one that has some is unknown.
			typ = string(bytes.Trim(p.value, `"`))
		}
	}
	def := defs.Lookup(typ)
	if def == nil {
		return nil, fmt.Errorf("resource: subset: no definition for resourceType %q", typ)
	}
	kept := make([]property, 0, len(props))
	hasMeta := false
	for _, p := range props {
		switch p.key {
		case "resourceType", "id":
		case "meta":
			hasMeta = true
		default:
			if !keep(def, p.key) {
				continue
			}
		}
		kept = append(kept, p)
	}
	if len(kept) == len(props) {
		return body, nil
	}

	const newMeta = `"meta":{"tag":[` + subsetted + `]}`
	out := make([]byte, 0, len(body)+len(newMeta))
	out = append(out, '{')
	for _, p := range kept {
		if !hasMeta && p.key != "resourceType" && p.key > "meta" {
			// Where the canonical (alphabetical) order puts it.
			out = append(out, newMeta+","...)
			hasMeta = true
		}
		if p.key != "meta" {
			out = append(out, p.whole...)
			out = append(out, ',')
			continue
		}
		tagged, err := withTag(p.value)
		if err != nil {
			return nil, fmt.Errorf("resource: subset: meta: %w", err)
		}
		out = append(out, `"meta":`...)
		out = append(out, tagged...)
		out = append(out, ',')
	}
	if !hasMeta {
		out = append(out, newMeta+","...)
	}
	out[len(out)-1] = '}'
	return out, nil
}

// withTag returns meta (an object) with the SUBSETTED tag added to
// meta.tag, unless it is there already.
func withTag(meta []byte) ([]byte, error) {
	props, err := properties(meta)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(meta)+len(subsetted)+16)
	out = append(out, '{')
	added := false
	for _, p := range props {
		switch {
		case p.key == "tag":
			var tags []struct{ System, Code string }
			if err := json.Unmarshal(p.value, &tags); err != nil {
				return nil, fmt.Errorf("tag: %w", err)
			}
			for _, t := range tags {
				if t.System == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" && t.Code == "SUBSETTED" {
					return meta, nil
				}
			}
			v := bytes.TrimSpace(p.value)
			out = append(out, `"tag":`...)
			if len(bytes.TrimSpace(v[1:len(v)-1])) == 0 {
				out = append(out, `[`+subsetted+`]`...)
			} else {
				out = append(out, v[:len(v)-1]...)
				out = append(out, ","+subsetted+"]"...)
			}
			out = append(out, ',')
			added = true
			continue
		case !added && p.key > "tag":
			out = append(out, `"tag":[`+subsetted+`],`...)
			added = true
		}
		out = append(out, p.whole...)
		out = append(out, ',')
	}
	if !added {
		out = append(out, `"tag":[`+subsetted+`],`...)
	}
	out[len(out)-1] = '}'
	return out, nil
}

// property is one property of a JSON object, as bytes of the object.
type property struct {
	key   string
	whole []byte // "key":value
	value []byte
}

var errNotObject = errors.New("not a JSON object")

// properties splits a JSON object into its properties without decoding
// their values. It checks the object's own syntax, not its values'.
func properties(obj []byte) ([]property, error) {
	b := bytes.TrimSpace(obj)
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, errNotObject
	}
	props := make([]property, 0, 32)
	i := skipSpace(b, 1)
	if i == len(b)-1 {
		return nil, nil
	}
	for {
		if b[i] != '"' {
			return nil, errNotObject
		}
		kend, ok := scanString(b, i)
		if !ok {
			return nil, fmt.Errorf("%w: unterminated key", errNotObject)
		}
		key := string(b[i+1 : kend-1])
		if strings.IndexByte(key, '\\') >= 0 {
			if err := json.Unmarshal(b[i:kend], &key); err != nil {
				return nil, fmt.Errorf("%w: key: %v", errNotObject, err)
			}
		}
		colon := skipSpace(b, kend)
		if colon >= len(b)-1 || b[colon] != ':' {
			return nil, errNotObject
		}
		vstart := skipSpace(b, colon+1)
		vend, err := valueEnd(b[:len(b)-1], vstart)
		if err != nil {
			return nil, err
		}
		props = append(props, property{key: key, whole: b[i:vend], value: b[vstart:vend]})
		next := skipSpace(b, vend)
		switch {
		case next == len(b)-1:
			return props, nil
		case b[next] == ',':
			i = skipSpace(b, next+1)
			if i >= len(b)-1 {
				return nil, errNotObject
			}
		default:
			return nil, errNotObject
		}
	}
}

// valueEnd returns the offset just after the JSON value starting at b[i].
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errNotObject
	}
	switch b[i] {
	case '"':
		end, ok := scanString(b, i)
		if !ok {
			return 0, fmt.Errorf("%w: unterminated string", errNotObject)
		}
		return end, nil
	case '{', '[':
		depth := 0
		for j := i; j < len(b); {
			switch b[j] {
			case '"':
				j = stringEnd(b, j)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
			j++
		}
		return 0, fmt.Errorf("%w: unterminated value", errNotObject)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\r' && b[j] != '\n' {
		j++
	}
	if j == i {
		return 0, errNotObject
	}
	return j, nil
}
