package resource

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Stamp used to marshal the whole resource through google/fhir for every
// call (a clone of the proto plus a full marshal: 15-17% of the CPU of a
// write, issues 2 and 4), although only three values change between calls:
// id, meta.versionId and meta.lastUpdated. A Resource now marshals once,
// with placeholder values in those three places, and each Stamp copies the
// bytes around them with the real values put in. The key order does not
// depend on the values (google/fhir sorts keys, resourceTypeFirst only moves
// resourceType), so the result is byte for byte the old marshal's;
// TestStampSplice checks it over every official example and Synthea resource.

// Placeholder values the template is marshalled with. Where they are is
// found from the JSON structure, not by searching for them, so a resource
// that happens to hold the same strings does not matter.
const (
	placeholderID      = "x"
	placeholderVersion = 1
)

var placeholderTime = time.Unix(0, 0)

// template is a canonical JSON with three values to put in.
type template struct {
	b []byte
	// holes are [start, end) of the id, versionId and lastUpdated values
	// (inside the quotes) in byte order; what[i] says which value hole i
	// takes (0 id, 1 versionId, 2 lastUpdated).
	holes [3][2]int
	what  [3]int
}

// stampTemplate marshals r with the placeholders and finds where they are.
// It is the only marshal of r.cr, so it marshals r.cr itself (no clone;
// the proto is dropped afterwards).
func (r *Resource) stampTemplate() (*template, error) {
	b, err := r.marshalCR(r.cr, placeholderID, placeholderVersion, placeholderTime)
	if err != nil {
		return nil, err
	}
	r.cr = nil
	resourceTypeFirst(b)
	return newTemplate(b)
}

// valueTemplate is stampTemplate from the decoded body (encode.go): the
// placeholders are set in v, which keeps them. ok is false when v holds a
// value google/fhir would normalise: then only the marshal gives the
// canonical JSON.
// size is the expected length of the canonical JSON.
func valueTemplate(v map[string]any, size int) (t *template, ok bool) {
	meta, _ := v["meta"].(map[string]any)
	if meta == nil {
		if _, has := v["meta"]; has {
			return nil, false
		}
		meta = map[string]any{}
		v["meta"] = meta
	}
	v["id"] = placeholderID
	meta["versionId"] = strconv.FormatInt(placeholderVersion, 10)
	meta["lastUpdated"] = instant(placeholderTime)
	// Where id, meta and resourceType went is noted as they are written:
	// newTemplate would scan the whole resource again to find them.
	var idAt, metaAt, rtAt [2]int
	b, ok := appendObject(make([]byte, 0, size), v, func(k string, start, end int) {
		switch k {
		case "id":
			idAt = [2]int{start, end}
		case "meta":
			metaAt = [2]int{start, end}
		case "resourceType":
			rtAt = [2]int{start, end}
		}
	})
	if !ok {
		return nil, false
	}
	resourceTypeFirst(b)
	if t, ok := markedTemplate(b, idAt, metaAt, rtAt); ok {
		return t, true
	}
	t, err := newTemplate(b)
	return t, err == nil
}

// markedTemplate is newTemplate for b, canonical JSON whose top-level id,
// meta and resourceType values were at id, meta and rt before
// resourceTypeFirst moved resourceType to the front: id and meta sort
// before it, so they moved right by the length of the property and its
// comma. It checks the placeholders are where it says; ok false leaves the
// search to newTemplate.
func markedTemplate(b []byte, id, meta, rt [2]int) (*template, bool) {
	if rt[0] == 0 || id[0] == 0 || meta[0] == 0 || id[0] > rt[0] || meta[0] > rt[0] {
		return nil, false
	}
	shift := rt[1] - (rt[0] - len(resourceTypeKey)) + 1
	holes := [3][2]int{{id[0] + shift + 1, id[1] + shift - 1}}
	props, err := properties(b[meta[0]+shift : meta[1]+shift])
	if err != nil {
		return nil, false
	}
	n := 1
	for _, p := range props {
		what := 0
		switch p.key {
		case "versionId":
			what = 1
		case "lastUpdated":
			what = 2
		default:
			continue
		}
		if n == 3 {
			return nil, false
		}
		start := cap(b) - cap(p.value) + 1
		holes[what] = [2]int{start, start + len(p.value) - 2}
		n++
	}
	want := [3]string{placeholderID, strconv.FormatInt(placeholderVersion, 10), instant(placeholderTime)}
	for i, h := range holes {
		if n != 3 || h[0] < 0 || h[1] > len(b) || h[0] > h[1] || string(b[h[0]:h[1]]) != want[i] {
			return nil, false
		}
	}
	// In byte order, as fill takes them: id, then meta's two.
	t := &template{b: b, holes: holes, what: [3]int{0, 1, 2}}
	if holes[2][0] < holes[1][0] {
		t.holes[1], t.holes[2], t.what[1], t.what[2] = holes[2], holes[1], 2, 1
	}
	return t, true
}

// newTemplate finds the stamped values in b, canonical JSON with the
// placeholders: the top-level "id" and the top-level meta's "versionId"
// and "lastUpdated".
func newTemplate(b []byte) (*template, error) {
	top, err := properties(b)
	if err != nil {
		return nil, fmt.Errorf("resource: template: %w", err)
	}
	type hole struct{ start, end, what int }
	var hs []hole
	// A property value is a subslice of b: its offset in b is the
	// difference of the capacities. A string value's hole drops the quotes.
	add := func(v []byte, what int) {
		start := cap(b) - cap(v) + 1
		hs = append(hs, hole{start, start + len(v) - 2, what})
	}
	for _, p := range top {
		switch p.key {
		case "id":
			add(p.value, 0)
		case "meta":
			meta, err := properties(p.value)
			if err != nil {
				return nil, fmt.Errorf("resource: template meta: %w", err)
			}
			for _, m := range meta {
				switch m.key {
				case "versionId":
					add(m.value, 1)
				case "lastUpdated":
					add(m.value, 2)
				}
			}
		}
	}
	if len(hs) != 3 {
		return nil, fmt.Errorf("resource: template: %d of the 3 stamped values found", len(hs))
	}
	slices.SortFunc(hs, func(a, b hole) int { return a.start - b.start })
	t := &template{b: b}
	for i, h := range hs {
		t.holes[i] = [2]int{h.start, h.end}
		t.what[i] = h.what
	}
	return t, nil
}

// fill returns a fresh copy of the template with the values put in.
func (t *template) fill(id, version, lastUpdated string) []byte {
	vals := [3]string{id, version, lastUpdated}
	out := make([]byte, 0, len(t.b)+len(id)+len(lastUpdated))
	at := 0
	for i, h := range t.holes {
		out = append(out, t.b[at:h[0]]...)
		out = append(out, vals[t.what[i]]...)
		at = h[1]
	}
	return append(out, t.b[at:]...)
}

// instant formats lastUpdated as google/fhir marshals the Instant Stamp
// used to set (microsecond precision, timezone "Z").
func instant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
}

// plainID reports whether id is written in JSON as it is (no escaping), as
// every id matching [A-Za-z0-9\-\.]{1,64} is; other ids take the marshal path.
func plainID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
