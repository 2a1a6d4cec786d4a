package search

import (
	"encoding/json"
	"fmt"
	"html"
	"slices"
	"strings"
	"time"

	"github.com/kiln-fhir/kiln/fhir/fhirpath"
	"github.com/kiln-fhir/kiln/fhir/jsonvalue"
)

// Extract computes the index entries of a resource of type typ from its
// canonical JSON, with the Default registry.
func Extract(typ string, body []byte) ([]Entry, error) { return Default().Extract(typ, body) }

// Extract computes the index entries of a resource of type typ from its
// canonical JSON: for each parameter of the type, in code order, the
// values its expression selects, normalised for the parameter's type (see
// Entry), without repeats. An error means the body is not a resource of
// that type, or an expression failed on it (no built-in one does on the
// official examples; a custom one might).
func (r *Registry) Extract(typ string, body []byte) ([]Entry, error) {
	return r.ExtractBase(typ, body, "")
}

// ExtractBase is Extract for a server without a configured base URL:
// absolute references under base (the URL the request reached) are
// indexed as relative ones too.
func (r *Registry) ExtractBase(typ string, body []byte, base string) ([]Entry, error) {
	res, err := decodeObject(typ, body)
	if err != nil {
		return nil, err
	}
	return r.extractValue(typ, res, base)
}

// decodeObject decodes a stored resource of typ for extraction.
func decodeObject(typ string, body []byte) (map[string]any, error) {
	v, err := jsonvalue.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("search: extract %s: %w", typ, err)
	}
	res, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("search: extract %s: not a JSON object", typ)
	}
	return res, nil
}

// ExtractValue is Extract for a resource already decoded with
// encoding/json and UseNumber.
func (r *Registry) ExtractValue(typ string, res map[string]any) ([]Entry, error) {
	return r.extractValue(typ, res, "")
}

// ExtractValueBase is ExtractBase for a resource already decoded with
// encoding/json and UseNumber (resource.Resource.Decoded): a write spares
// decoding the JSON it has just encoded. res is only read.
func (r *Registry) ExtractValueBase(typ string, res map[string]any, base string) ([]Entry, error) {
	return r.extractValue(typ, res, base)
}

func (r *Registry) extractValue(typ string, res map[string]any, base string) ([]Entry, error) {
	tp := r.types[typ]
	if tp == nil {
		return nil, fmt.Errorf("search: extract: unknown resource type %q", typ)
	}
	return r.extract(typ, res, base, tp.sorted)
}

// extract computes the entries of params on res, a resource of typ.
func (r *Registry) extract(typ string, res map[string]any, base string, params []*Param) ([]Entry, error) {
	if rt, _ := res["resourceType"].(string); rt != typ {
		return nil, fmt.Errorf("search: extract %s: resourceType is %q", typ, rt)
	}
	bases := r.bases
	if b := strings.TrimRight(base, "/"); b != "" {
		bases = append(slices.Clip(bases), b+"/")
	}
	x := extractor{loc: r.loc, bases: bases, res: res}
	out := make([]Entry, 0, 32)
	for _, p := range params {
		start := len(out)
		if p.narrative {
			out = x.narrative(out, p)
			continue
		}
		nodes, err := p.expr.Evaluate(res)
		if err != nil {
			return nil, fmt.Errorf("search: extract %s.%s: %w", typ, p.Name, err)
		}
		if len(nodes) == 0 {
			continue
		}
		if p.Type == Composite {
			if out, err = x.composite(out, p, nodes); err != nil {
				return nil, fmt.Errorf("search: extract %s.%s: %w", typ, p.Name, err)
			}
		} else {
			for _, n := range nodes {
				out = x.appendNode(out, p.Name, p.Type, p.Phonetic, n)
			}
		}
		out = dedupe(out, start)
	}
	return out, nil
}

type extractor struct {
	loc   *time.Location
	bases []string
	res   map[string]any
}

// dedupe removes repeated entries from out[start:]: a few by comparing
// each pair, many (a Group's members, a List's items) through a map.
func dedupe(out []Entry, start int) []Entry {
	n := start
	if len(out)-start <= 16 {
	pairs:
		for i := start; i < len(out); i++ {
			for j := start; j < n; j++ {
				if out[i].equal(&out[j]) {
					continue pairs
				}
			}
			out[n] = out[i]
			n++
		}
		return out[:n]
	}
	seen := make(map[entryKey]bool, len(out)-start)
	for i := start; i < len(out); i++ {
		k := out[i].key()
		if seen[k] {
			continue
		}
		seen[k] = true
		out[n] = out[i]
		n++
	}
	return out[:n]
}

// entryKey is an Entry made comparable.
type entryKey struct {
	param, value, text, system, code, unit, ref string
	typ                                         Type
	num, lo, hi                                 float64
	start, end                                  int64
	components                                  string
}

func (e *Entry) key() entryKey {
	k := entryKey{param: e.Param, value: e.Value, text: e.Text, system: e.System, code: e.Code, unit: e.Unit,
		ref: e.Ref, typ: e.Type, num: e.Num, lo: e.Lo, hi: e.Hi, start: e.Start.UnixMilli(), end: e.End.UnixMilli()}
	if len(e.Components) > 0 {
		b, _ := json.Marshal(e.Components)
		k.components = string(b)
	}
	return k
}

// appendNode appends the entries of one value selected for a parameter.
// Values of a shape the parameter type cannot use (a string where a date
// is expected, an unknown object) give none.
func (x *extractor) appendNode(out []Entry, param string, typ Type, phonetic bool, n fhirpath.Node) []Entry {
	switch typ {
	case String:
		return x.stringValues(out, param, phonetic, n)
	case Token:
		return x.token(out, param, n)
	case Date:
		return x.date(out, param, n)
	case Number:
		return x.number(out, param, Number, n)
	case Quantity:
		return x.number(out, param, Quantity, n)
	case Reference:
		return x.reference(out, param, n)
	case URI:
		if s, ok := n.AsString(); ok && s != "" {
			out = append(out, Entry{Param: param, Type: URI, Value: s})
		}
	case Special:
		return x.near(out, param, n)
	}
	return out
}

// stringValues indexes a string, or each part of a HumanName or Address and
// the whole (search.html#string: "Carreno" finds "Carreno Quinones").
func (x *extractor) stringValues(out []Entry, param string, phonetic bool, n fhirpath.Node) []Entry {
	add := func(s string) {
		if s = strings.TrimSpace(s); s == "" {
			return
		}
		e := Entry{Param: param, Type: String, Value: s}
		if phonetic {
			e.Text = Phonetic(s)
		} else {
			e.Text = Fold(s)
		}
		if e.Text != "" {
			out = append(out, e)
		}
	}
	// word indexes a later word of a family name for starts-with only:
	// without Value, :exact (the whole string, search.html#string) never
	// matches it and _sort (the stores sort strings on entries with a
	// Value) does not sort "van de Heuvel" under "de".
	word := func(w string) {
		t := Fold(w)
		if phonetic {
			t = Phonetic(w)
		}
		if t != "" {
			out = append(out, Entry{Param: param, Type: String, Text: t})
		}
	}
	if s, ok := n.AsString(); ok {
		add(s)
		if param == "family" {
			// The family parameter (HumanName.family) matches each word of
			// a family name on its own too, as name does: "van der Berg"
			// is found by family=berg (B-STR-04; README, Search).
			if words := strings.Fields(s); len(words) > 1 {
				for _, w := range words[1:] {
					word(w)
				}
			}
		}
		return out
	}
	m, ok := n.AsMap()
	if !ok {
		return out
	}
	var parts, whole, words []string
	switch {
	case n.Type == "HumanName" || hasAny(m, "family", "given", "prefix", "suffix"):
		parts = stringsOf(m, "text", "family", "given", "prefix", "suffix")
		whole = stringsOf(m, "prefix", "given", "family", "suffix")
		// Each word of a family name on its own, as search.html suggests.
		if family, _ := m["family"].(string); strings.Contains(strings.TrimSpace(family), " ") {
			words = strings.Fields(family)[1:]
		}
	case n.Type == "Address" || hasAny(m, "line", "city", "district", "state", "postalCode", "country"):
		parts = stringsOf(m, "text", "line", "city", "district", "state", "postalCode", "country")
		whole = stringsOf(m, "line", "city", "district", "state", "postalCode", "country")
	case hasAny(m, "text") && len(m) <= 2:
		// A bare text (say, a name given only as text) is still a string.
		parts = stringsOf(m, "text")
	}
	for _, s := range parts {
		add(s)
	}
	for _, w := range words {
		word(w)
	}
	if len(whole) > 1 {
		add(strings.Join(whole, " "))
	}
	return out
}

func hasAny(m map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// stringsOf collects the string values (or arrays of strings) of keys.
func stringsOf(m map[string]any, keys ...string) []string {
	var out []string
	for _, k := range keys {
		switch v := m[k].(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, item := range v {
				if s, ok := item.(string); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// contactSystems are ContactPoint.system's codes: an object with value
// and one of these is a ContactPoint, not an Identifier.
var contactSystems = map[string]bool{"phone": true, "fax": true, "email": true, "pager": true, "url": true, "sms": true, "other": true}

func (x *extractor) token(out []Entry, param string, n fhirpath.Node) []Entry {
	switch v := n.Value.(type) {
	case string:
		if v != "" {
			out = append(out, Entry{Param: param, Type: Token, Code: v})
		}
		return out
	case bool:
		return append(out, Entry{Param: param, Type: Token, Code: fmt.Sprint(v)})
	case json.Number:
		return append(out, Entry{Param: param, Type: Token, Code: string(v)})
	}
	m, ok := n.AsMap()
	if !ok {
		return out
	}
	str := func(k string) string { s, _ := m[k].(string); return s }
	coding := func(c map[string]any) {
		system, _ := c["system"].(string)
		code, _ := c["code"].(string)
		display, _ := c["display"].(string)
		if system != "" || code != "" {
			out = append(out, Entry{Param: param, Type: Token, System: system, Code: code, Text: Fold(display)})
		}
	}
	switch {
	case n.Type == "CodeableConcept" || (n.Type == "" && (hasAny(m, "coding") || (hasAny(m, "text") && !hasAny(m, "value", "code")))):
		for _, c := range objects(m["coding"]) {
			coding(c)
		}
		if t := Fold(str("text")); t != "" {
			out = append(out, Entry{Param: param, Type: Token, Text: t})
		}
	case n.Type == "Coding" || (n.Type == "" && hasAny(m, "code")):
		coding(m)
	case n.Type == "ContactPoint" || (n.Type == "" && contactSystems[str("system")] && !hasAny(m, "type", "assigner")):
		// search.html#token: a ContactPoint matches on its value alone.
		if v := str("value"); v != "" {
			out = append(out, Entry{Param: param, Type: Token, Code: v})
		}
	case n.Type == "Identifier" || (n.Type == "" && hasAny(m, "value", "system")):
		if str("value") == "" && str("system") == "" {
			return out
		}
		e := Entry{Param: param, Type: Token, System: str("system"), Code: str("value")}
		if t, ok := m["type"].(map[string]any); ok {
			text, _ := t["text"].(string)
			for _, c := range objects(t["coding"]) {
				system, _ := c["system"].(string)
				code, _ := c["code"].(string)
				display, _ := c["display"].(string)
				e.Components = append(e.Components, Entry{Param: "of-type", Type: Token, System: system, Code: code})
				if text == "" {
					text = display
				}
			}
			e.Text = Fold(text)
		}
		out = append(out, e)
	}
	return out
}

// objects returns the objects of an array value (or of a single object).
func objects(v any) []map[string]any {
	switch x := v.(type) {
	case map[string]any:
		return []map[string]any{x}
	case []any:
		out := make([]map[string]any, 0, len(x))
		for _, item := range x {
			if m, ok := item.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

func (x *extractor) date(out []Entry, param string, n fhirpath.Node) []Entry {
	if s, ok := n.AsString(); ok {
		if start, end, ok := dateRange(s, x.loc); ok {
			out = append(out, Entry{Param: param, Type: Date, Start: start, End: end})
		}
		return out
	}
	m, ok := n.AsMap()
	if !ok {
		return out
	}
	// A Period: open ends are open (search.html#date).
	if hasAny(m, "start", "end") && (n.Type == "" || n.Type == "Period") {
		start, end := MinTime, MaxTime
		found := false
		if s, ok := m["start"].(string); ok {
			if lo, _, ok := dateRange(s, x.loc); ok {
				start, found = lo, true
			}
		}
		if s, ok := m["end"].(string); ok {
			if _, hi, ok := dateRange(s, x.loc); ok {
				end, found = hi, true
			}
		}
		if found {
			out = append(out, Entry{Param: param, Type: Date, Start: start, End: end})
		}
		return out
	}
	// A Timing: only its outer limits count, its events and the bounds
	// of its repeat.
	if hasAny(m, "event", "repeat") && (n.Type == "" || n.Type == "Timing") {
		var start, end time.Time
		widen := func(lo, hi time.Time) {
			if start.IsZero() || lo.Before(start) {
				start = lo
			}
			if end.IsZero() || hi.After(end) {
				end = hi
			}
		}
		for _, s := range stringsOf(m, "event") {
			if lo, hi, ok := dateRange(s, x.loc); ok {
				widen(lo, hi)
			}
		}
		if rep, ok := m["repeat"].(map[string]any); ok {
			if b, ok := rep["boundsPeriod"].(map[string]any); ok {
				lo, hi := MinTime, MaxTime
				if s, ok := b["start"].(string); ok {
					lo, _, _ = dateRange(s, x.loc)
				}
				if s, ok := b["end"].(string); ok {
					_, hi, _ = dateRange(s, x.loc)
				}
				widen(lo, hi)
			}
		}
		if !start.IsZero() {
			out = append(out, Entry{Param: param, Type: Date, Start: start, End: end})
		}
	}
	return out
}

// iso4217 is the system of Money's currency codes.
const iso4217 = "urn:iso:std:iso:4217"

// number indexes a number, or for quantity parameters a Quantity (Age,
// Duration, … too), a Money or a Range.
func (x *extractor) number(out []Entry, param string, typ Type, n fhirpath.Node) []Entry {
	if v, ok := n.AsNumber(); ok {
		if e, ok := numberEntry(param, typ, string(v)); ok {
			out = append(out, e)
		}
		return out
	}
	m, ok := n.AsMap()
	if !ok {
		return out
	}
	quantity := func(q map[string]any) (Entry, bool) {
		v, ok := q["value"].(json.Number)
		if !ok {
			return Entry{}, false
		}
		e, ok := numberEntry(param, typ, string(v))
		if !ok {
			return e, false
		}
		if typ == Quantity {
			e.System, _ = q["system"].(string)
			e.Code, _ = q["code"].(string)
			e.Unit, _ = q["unit"].(string)
			if cur, ok := q["currency"].(string); ok {
				e.System, e.Code = iso4217, cur
			}
		}
		switch q["comparator"] {
		case "<", "<=":
			e.Lo = -MaxNumber
		case ">", ">=":
			e.Hi = MaxNumber
		}
		return e, true
	}
	switch {
	case n.Type == "Range" || (n.Type == "" && hasAny(m, "low", "high")):
		low, lok := objects(m["low"]), false
		high, hok := objects(m["high"]), false
		e := Entry{Param: param, Type: typ, Lo: -MaxNumber, Hi: MaxNumber}
		if len(low) == 1 {
			var l Entry
			if l, lok = quantity(low[0]); lok {
				e.Lo, e.System, e.Code, e.Unit = l.Num, l.System, l.Code, l.Unit
			}
		}
		if len(high) == 1 {
			var h Entry
			if h, hok = quantity(high[0]); hok {
				e.Hi = h.Num
				if !lok {
					e.System, e.Code, e.Unit = h.System, h.Code, h.Unit
				}
			}
		}
		if lok || hok {
			out = append(out, e)
		}
	case n.Type == "SampledData":
		// A series of values, not a quantity: not indexed.
	default:
		if e, ok := quantity(m); ok {
			out = append(out, e)
		}
	}
	return out
}

func numberEntry(param string, typ Type, s string) (Entry, bool) {
	v, lo, hi, ok := numberRange(s)
	if !ok {
		return Entry{}, false
	}
	return Entry{Param: param, Type: typ, Value: s, Num: v, Lo: lo, Hi: hi}, true
}

// reference indexes a Reference, a canonical or uri, or a resource (Bundle
// composition and message select the first entry's resource).
func (x *extractor) reference(out []Entry, param string, n fhirpath.Node) []Entry {
	if s, ok := n.AsString(); ok {
		ref, version := x.normalise(s)
		if ref != "" {
			out = append(out, Entry{Param: param, Type: Reference, Ref: ref, Value: version})
		}
		return out
	}
	m, ok := n.AsMap()
	if !ok {
		return out
	}
	if rt, ok := m["resourceType"].(string); ok {
		if id, ok := m["id"].(string); ok && id != "" {
			out = append(out, Entry{Param: param, Type: Reference, Ref: rt + "/" + id})
		}
		return out
	}
	e := Entry{Param: param, Type: Reference}
	if s, ok := m["reference"].(string); ok {
		e.Ref, e.Value = x.normalise(s)
	}
	if id, ok := m["identifier"].(map[string]any); ok {
		e.System, _ = id["system"].(string)
		e.Code, _ = id["value"].(string)
	}
	if e.Ref != "" || e.Code != "" {
		out = append(out, e)
	}
	return out
}

// normalise turns a literal reference into what the index stores, and its
// version (search.html#reference).
func (x *extractor) normalise(ref string) (string, string) {
	ref = strings.TrimSpace(ref)
	if ref == "" || strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "urn:") {
		return ref, ""
	}
	var version string
	if i := strings.IndexByte(ref, '|'); i >= 0 { // canonical|version
		ref, version = ref[:i], ref[i+1:]
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref, version = ref[:i], ref[i+len("/_history/"):]
	}
	for _, b := range x.bases {
		if rel, ok := strings.CutPrefix(ref, b); ok && fhirpath.ReferenceType(rel) != "" && strings.Count(rel, "/") == 1 {
			return rel, version
		}
	}
	return ref, version
}

// composite indexes one tuple per combination of the components' values at
// each node the composite's expression selects.
func (x *extractor) composite(out []Entry, p *Param, nodes []fhirpath.Node) ([]Entry, error) {
	// maxTuples bounds the combinations of one node: a CodeableConcept
	// with many codings times a value is the realistic case.
	const maxTuples = 64
	parts := make([][]Entry, len(p.Components))
nodes:
	for _, n := range nodes {
		// The last component (the value) is the most often missing: when
		// one is, the node has no tuple, and the others need no work.
		for i := len(p.Components) - 1; i >= 0; i-- {
			c := p.Components[i]
			vals, err := c.expr.EvaluateAt(x.res, n)
			if err != nil {
				return nil, err
			}
			parts[i] = parts[i][:0]
			for _, v := range vals {
				parts[i] = x.appendNode(parts[i], c.Name, c.Type, false, v)
			}
			if parts[i] = dedupe(parts[i], 0); len(parts[i]) == 0 {
				continue nodes
			}
		}
		tuples := [][]Entry{nil}
		for _, ps := range parts {
			var next [][]Entry
			for _, t := range tuples {
				for _, part := range ps {
					if len(next) == maxTuples {
						break
					}
					next = append(next, append(t[:len(t):len(t)], part))
				}
			}
			tuples = next
		}
		for _, t := range tuples {
			out = append(out, Entry{Param: p.Name, Type: Composite, Components: t})
		}
	}
	return out, nil
}

// near indexes Location.position as its latitude and longitude.
func (x *extractor) near(out []Entry, param string, n fhirpath.Node) []Entry {
	m, ok := n.AsMap()
	if !ok {
		return out
	}
	lat, ok1 := m["latitude"].(json.Number)
	long, ok2 := m["longitude"].(json.Number)
	if !ok1 || !ok2 {
		return out
	}
	la, ok1 := numberEntry("latitude", Number, string(lat))
	lo, ok2 := numberEntry("longitude", Number, string(long))
	if ok1 && ok2 {
		out = append(out, Entry{Param: param, Type: Special, Components: []Entry{la, lo}})
	}
	return out
}

// maxNarrative bounds the folded narrative _text keeps: enough for any
// human-written summary, not a generated table of every value.
const maxNarrative = 16 << 10

// narrative indexes the resource's narrative (text.div) as folded plain
// text for _text.
func (x *extractor) narrative(out []Entry, p *Param) []Entry {
	text, _ := x.res["text"].(map[string]any)
	div, _ := text["div"].(string)
	if div == "" {
		return out
	}
	var b strings.Builder
	inTag := false
	for i := 0; i < len(div); i++ {
		switch c := div[i]; {
		case c == '<':
			inTag = true
			b.WriteByte(' ')
		case c == '>':
			inTag = false
		case !inTag:
			b.WriteByte(c)
		}
	}
	t := Fold(html.UnescapeString(b.String()))
	if len(t) > maxNarrative {
		t = t[:maxNarrative]
		for len(t) > 0 && t[len(t)-1]&0xC0 == 0x80 { // do not split a character
			t = t[:len(t)-1]
		}
		if len(t) > 0 && t[len(t)-1] >= 0xC0 {
			t = t[:len(t)-1]
		}
	}
	if t != "" {
		out = append(out, Entry{Param: p.Name, Type: String, Text: t})
	}
	return out
}
