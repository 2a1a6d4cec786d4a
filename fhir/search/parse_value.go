package search

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/fhirpath"
	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// values parses the comma-separated values of one clause. false means the
// clause is refused (the problems are recorded).
func (p *parser) values(key string, l *leaf, raw string, items []string) ([]Value, bool) {
	if l.modifier == "missing" {
		switch v := strings.TrimSpace(raw); v {
		case "true", "false":
			return []Value{{Raw: v, Missing: v == "true"}}, true
		}
		p.fail(outcome.CodeInvalid, key, ":missing takes true or false, not %s", quote(raw))
		return nil, false
	}
	out := make([]Value, 0, len(items))
	ok := true
	for _, it := range items {
		if it = strings.TrimSpace(it); it == "" {
			continue
		}
		v, skip, problem := p.value(l, it)
		switch {
		case problem != "":
			p.fail(outcome.CodeInvalid, key, "%s", problem)
			ok = false
		case !skip:
			out = append(out, v)
		}
	}
	return caseVariants(l, out), ok // token_case.go
}

// value parses one value (still escaped) for a parameter. skip means it
// is empty once normalised, and is ignored like an empty value.
func (p *parser) value(l *leaf, item string) (v Value, skip bool, problem string) {
	switch l.typ {
	case String:
		text := unescape(item)
		v = Value{Raw: text}
		if l.phonetic {
			if v.Text = Phonetic(text); v.Text == "" && l.modifier != "exact" {
				return v, false, fmt.Sprintf("%s has no letters to match by sound", quote(text))
			}
			return v, false, ""
		}
		v.Text = Fold(text)
		return v, v.Text == "" && l.modifier != "exact", ""
	case Token:
		return tokenValue(l, item)
	case Date:
		v, problem = p.dateValue(l, item)
	case Number:
		v, problem = numberValue(l, item)
	case Quantity:
		v, problem = quantityValue(l, item)
	case Reference:
		if l.modifier == "identifier" {
			// search.html#reference: :identifier is a token search of
			// Reference.identifier.
			return tokenValue(&leaf{name: l.name, typ: Token}, item)
		}
		v, problem = p.referenceValue(l, item)
	case URI:
		u := unescape(item)
		if (l.modifier == "above" || l.modifier == "below") && strings.HasPrefix(u, "urn:") {
			return v, false, fmt.Sprintf(":%s compares URLs by path, not URNs such as %s (search.html#uri)", l.modifier, quote(u))
		}
		v = Value{Raw: u, Value: u}
	case Composite:
		v, problem = p.compositeValue(l, item)
	case Special:
		v, problem = nearValue(l, item)
	default:
		problem = fmt.Sprintf("%s parameters are not supported", l.typ)
	}
	return v, false, problem
}

// tokenValue parses [system]|[code], |code, system| or code
// (search.html#token), or the value a token modifier takes.
func tokenValue(l *leaf, item string) (Value, bool, string) {
	raw := unescape(item)
	switch {
	case l.modifier == "text":
		t := Fold(raw)
		return Value{Raw: raw, Text: t}, t == "", ""
	case l.modifier == "in" || l.modifier == "not-in":
		return Value{Raw: raw, Value: raw}, false, ""
	case l.modifier == "of-type":
		parts := splitEscaped(item, '|', -1)
		if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
			return Value{}, false, fmt.Sprintf(":of-type takes [type system]|[type code]|[identifier value], not %s", quote(raw))
		}
		return Value{Raw: raw, Code: unescape(parts[2]),
			Components: []Value{{System: unescape(parts[0]), Code: unescape(parts[1]), HasSystem: true}}}, false, ""
	case l.name == "_id":
		// search.html#id: the logical id, exactly; an id has no system.
		return Value{Raw: raw, Code: raw}, false, ""
	}
	parts := splitEscaped(item, '|', 2)
	if len(parts) == 1 {
		return Value{Raw: raw, Code: raw}, false, ""
	}
	v := Value{Raw: raw, System: unescape(parts[0]), Code: unescape(parts[1]), HasSystem: true}
	if v.System == "" && v.Code == "" {
		return v, false, fmt.Sprintf("%s: a token needs a system or a code around |", l.name)
	}
	return v, false, ""
}

// prefixOf splits a comparison prefix off an ordered value
// (search.html#prefix); without one the prefix is eq.
func prefixOf(s string) (Prefix, string, bool) {
	if len(s) > 2 {
		switch pr := Prefix(s[:2]); pr {
		case Eq, Ne, Gt, Lt, Ge, Le, Sa, Eb, Ap:
			return pr, s[2:], true
		}
	}
	return Eq, s, false
}

// allows says whether every definition of the parameter takes the prefix.
func (l *leaf) allows(pr Prefix) bool {
	for _, prm := range l.params {
		if len(prm.Comparators) > 0 && !slices.Contains(prm.Comparators, string(pr)) {
			return false
		}
	}
	return true
}

func (p *parser) dateValue(l *leaf, item string) (Value, string) {
	pr, rest, explicit := prefixOf(unescape(item))
	if explicit && !l.allows(pr) {
		return Value{}, fmt.Sprintf("%s does not take the prefix %s", l.name, pr)
	}
	// A '+' of a time zone sent unencoded arrives as a space; a date has
	// no space of its own.
	s := strings.ReplaceAll(rest, " ", "+")
	start, end, ok := dateRange(s, p.r.loc)
	if !ok {
		return Value{}, fmt.Sprintf("%s is not a date, dateTime or instant (yyyy, yyyy-mm, yyyy-mm-dd, yyyy-mm-ddThh:mm[:ss[.fff]][Z|±hh:mm])", quote(rest))
	}
	return Value{Raw: unescape(item), Prefix: pr, Start: start, End: end}, ""
}

// number reads a decimal as search.html#number writes it: digits, an
// optional fraction and an optional exponent, and its implicit range.
func number(s string) (v, lo, hi float64, ok bool) {
	i := 0
	if strings.HasPrefix(s, "-") {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	if digits() == 0 {
		return 0, 0, 0, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return 0, 0, 0, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, 0, 0, false
		}
	}
	if i != len(s) {
		return 0, 0, 0, false
	}
	v, lo, hi, ok = numberRange(s)
	if !ok || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, 0, 0, false
	}
	return v, lo, hi, true
}

func numberValue(l *leaf, item string) (Value, string) {
	raw := unescape(item)
	pr, rest, explicit := prefixOf(raw)
	if explicit && !l.allows(pr) {
		return Value{}, fmt.Sprintf("%s does not take the prefix %s", l.name, pr)
	}
	n, lo, hi, ok := number(rest)
	if !ok {
		return Value{}, fmt.Sprintf("%s is not a number", quote(rest))
	}
	return Value{Raw: raw, Prefix: pr, Num: n, Lo: lo, Hi: hi}, ""
}

// quantityValue parses [prefix]number|system|code, number||unit or a
// number alone (search.html#quantity).
func quantityValue(l *leaf, item string) (Value, string) {
	pr, rest, explicit := prefixOf(item)
	if explicit && !l.allows(pr) {
		return Value{}, fmt.Sprintf("%s does not take the prefix %s", l.name, pr)
	}
	parts := splitEscaped(rest, '|', -1)
	if len(parts) != 1 && len(parts) != 3 {
		return Value{}, fmt.Sprintf("%s is not a quantity: [prefix]number|system|code, number||unit or number", quote(unescape(item)))
	}
	num := strings.TrimSpace(unescape(parts[0]))
	n, lo, hi, ok := number(num)
	if !ok {
		return Value{}, fmt.Sprintf("%s is not a number", quote(num))
	}
	v := Value{Raw: unescape(item), Prefix: pr, Num: n, Lo: lo, Hi: hi}
	if len(parts) == 3 {
		v.System, v.Code = unescape(parts[1]), unescape(parts[2])
	}
	return v, ""
}

// referenceValue parses [type]/[id], [id], an absolute URL or a
// canonical[|version] (search.html#reference), normalised as Extract
// normalises references.
func (p *parser) referenceValue(l *leaf, item string) (Value, string) {
	parts := splitEscaped(item, '|', -1)
	if len(parts) > 2 {
		return Value{}, fmt.Sprintf("%s is not a reference: [type]/[id], [id], a URL or canonical|version", quote(unescape(item)))
	}
	ref, version := p.x.normalise(unescape(parts[0]))
	if len(parts) == 2 {
		version = unescape(parts[1])
	}
	if ref == "" {
		return Value{}, fmt.Sprintf("%s is not a reference", quote(unescape(item)))
	}
	v := Value{Raw: unescape(item), Ref: ref, Value: version}
	switch {
	case strings.HasPrefix(ref, "#"):
		// a contained resource: matched as written
	case !strings.ContainsAny(ref, "/:"):
		// A bare id: search.html#reference allows it; with one possible
		// type (or :[type]) it is that type's reference, which the index
		// holds.
		t := l.target
		if t == "" && len(l.targets) == 1 {
			t = l.targets[0]
		}
		if t != "" {
			v.Ref, v.RefType = t+"/"+ref, t
		}
	default:
		v.RefType = fhirpath.ReferenceType(ref)
		if l.target != "" && v.RefType != l.target {
			return Value{}, fmt.Sprintf("%s is not a reference to a %s (%s:%s)", quote(ref), l.target, l.name, l.target)
		}
	}
	return v, ""
}

// compositeValue parses the $-separated parts of a composite, each as its
// component parameter (search.html#composite).
func (p *parser) compositeValue(l *leaf, item string) (Value, string) {
	comps := l.params[0].Components
	for _, prm := range l.params[1:] {
		if len(prm.Components) != len(comps) {
			return Value{}, fmt.Sprintf("%s has different components for the types searched; name one type", l.name)
		}
	}
	parts := splitEscaped(item, '$', -1)
	if len(parts) != len(comps) {
		names := make([]string, len(comps))
		for i, c := range comps {
			names[i] = c.Name
		}
		return Value{}, fmt.Sprintf("%s takes %d parts separated by $ (%s), not %d", l.name, len(comps), strings.Join(names, "$"), len(parts))
	}
	v := Value{Raw: unescape(item), Components: make([]Value, len(comps))}
	for i, c := range comps {
		part := strings.TrimSpace(parts[i])
		cl := &leaf{name: c.Name, typ: c.Type}
		cv, skip, problem := p.value(cl, part)
		if problem == "" && (skip || part == "") {
			problem = fmt.Sprintf("%s: the %s part is empty", l.name, c.Name)
		}
		if problem != "" {
			return Value{}, problem
		}
		v.Components[i] = cv
	}
	return v, ""
}

// nearValue parses near=[latitude]|[longitude]|[distance]|[units]
// (Location near, search.html#special). Without units the distance is in
// kilometres; without a distance the store chooses what is near.
func nearValue(l *leaf, item string) (Value, string) {
	if l.name != "near" {
		return Value{}, fmt.Sprintf("the special parameter %s is not supported", l.name)
	}
	parts := splitEscaped(item, '|', -1)
	if len(parts) < 2 || len(parts) > 4 {
		return Value{}, fmt.Sprintf("near takes latitude|longitude[|distance[|units]], not %s", quote(unescape(item)))
	}
	coord := func(s string, limit float64) (Value, bool) {
		s = strings.TrimSpace(unescape(s))
		n, lo, hi, ok := number(s)
		return Value{Raw: s, Prefix: Eq, Num: n, Lo: lo, Hi: hi}, ok && n >= -limit && n <= limit
	}
	lat, ok1 := coord(parts[0], 90)
	long, ok2 := coord(parts[1], 180)
	if !ok1 || !ok2 {
		return Value{}, fmt.Sprintf("near: %s is not a latitude|longitude in degrees", quote(unescape(item)))
	}
	v := Value{Raw: unescape(item), Components: []Value{lat, long}}
	if len(parts) >= 3 && strings.TrimSpace(parts[2]) != "" {
		d, ok := coord(parts[2], math.MaxFloat64)
		if !ok || d.Num < 0 {
			return Value{}, fmt.Sprintf("near: %s is not a distance", quote(unescape(parts[2])))
		}
		d.Code = "km"
		if len(parts) == 4 && strings.TrimSpace(parts[3]) != "" {
			d.Code = strings.TrimSpace(unescape(parts[3]))
		}
		v.Components = append(v.Components, d)
	}
	return v, ""
}

// splitEscaped splits s at each sep not escaped by a backslash
// (search.html#escaping), into at most n parts (n < 0: all). The parts
// keep their escapes, for a later split at another separator.
func splitEscaped(s string, sep byte, n int) []string {
	var out []string
	start := 0
	for i := 0; i < len(s) && n != 1; i++ {
		switch s[i] {
		case '\\':
			i++ // whatever follows is not a separator
		case sep:
			out = append(out, s[start:i])
			start = i + 1
			n--
		}
	}
	return append(out, s[start:])
}

// unescape removes the escapes of search.html#escaping: \, \| \$ \\ stand
// for the character; any other backslash is kept as data.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`,|$\`, s[i+1]) >= 0 {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
