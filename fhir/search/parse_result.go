package search

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// resultParam handles the parameters that shape the results rather than
// select them (search.html#return), and the paging cursor.
func (p *parser) resultParam(key, name, mod string, values []string) {
	iterate := false
	switch {
	case mod == "":
	case (name == "_include" || name == "_revinclude") && (mod == "iterate" || mod == "recurse"):
		// :recurse is the DSTU2 spelling of :iterate.
		iterate = true
	default:
		p.fail(outcome.CodeNotSupported, key, "unknown modifier :%s on %s", mod, name)
		return
	}
	var given []string
	for _, v := range values {
		if v = strings.TrimSpace(v); v != "" {
			given = append(given, v)
		}
	}
	if len(given) == 0 {
		return // an empty value is ignored
	}
	switch name {
	case "_include", "_revinclude":
		for _, v := range given {
			p.include(key, name == "_revinclude", iterate, v)
		}
		return
	case "_elements":
		for _, v := range given {
			p.elements(key, v)
		}
		return
	case "_sort":
		// A repeated _sort adds keys after those already given.
		for _, v := range given {
			p.sortKeys(key, v)
		}
		return
	}
	if len(given) > 1 {
		p.fail(outcome.CodeInvalid, key, "%s may appear only once", name)
		return
	}
	v := given[0]
	switch name {
	case "_count":
		p.count(key, v)
	case "_total":
		switch t := TotalMode(v); t {
		case TotalNone, TotalEstimate, TotalAccurate:
			p.q.Total = t
		default:
			p.fail(outcome.CodeInvalid, key, "_total takes none, estimate or accurate, not %s", quote(v))
		}
	case "_summary":
		switch v {
		case "true", "text", "data", "count", "false":
			p.q.Summary = v
		default:
			p.fail(outcome.CodeInvalid, key, "_summary takes true, text, data, count or false, not %s", quote(v))
		}
	case "_page":
		// Opaque to the parser: the store that issued it checks it.
		p.q.Cursor = v
	case "_contained":
		switch v {
		case "false": // the default: contained resources are not searched on their own
		case "true", "both":
			p.ignore(key, "_contained="+v+" is not supported: contained resources are searched through their container only")
		default:
			p.fail(outcome.CodeInvalid, key, "_contained takes true, false or both, not %s", quote(v))
		}
	case "_containedType":
		switch v {
		case "container", "contained":
			p.ignore(key, "_containedType applies to _contained=true, which is not supported")
		default:
			p.fail(outcome.CodeInvalid, key, "_containedType takes container or contained, not %s", quote(v))
		}
	}
}

// count sets the page size. search.html#count: the server may return
// fewer than asked, so a larger _count is lowered to the maximum (and
// reported); a negative or non-integer _count is an error.
func (p *parser) count(key, v string) {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			p.fail(outcome.CodeInvalid, key, "_count takes a whole number from 0 (a total only) to %d, not %s", p.opts.MaxCount, quote(v))
			return
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n > p.opts.MaxCount {
		n = p.opts.MaxCount
		p.report.Ignored = append(p.report.Ignored, Ignored{Param: key,
			Reason: fmt.Sprintf("_count=%s is above the largest page size; %d is used", v, n)})
	}
	p.q.Count = n
}

// sortKeys adds the keys of one _sort value (search.html#sort): a comma
// list of parameters of every type searched, each descending with '-'.
func (p *parser) sortKeys(key, v string) {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		desc := strings.HasPrefix(item, "-")
		name := strings.TrimPrefix(item, "-")
		if len(p.q.Sort) >= MaxOr {
			p.fail(outcome.CodeTooCostly, key, "more than %d sort keys", MaxOr)
			return
		}
		if name == "" || strings.ContainsAny(name, ":.") {
			p.fail(outcome.CodeInvalid, key, "_sort takes parameter names without modifiers or chains, not %s", quote(item))
			continue
		}
		params, unknown, problem := p.resolve(p.types, name)
		switch {
		case unknown:
			p.fail(outcome.CodeInvalid, key, "cannot sort by %s: not a search parameter of %s", quote(name), describe(p.scope(p.types)))
			continue
		case problem != "":
			p.fail(outcome.CodeInvalid, key, "cannot sort by %s: %s", name, problem)
			continue
		case params[0].Type == Composite || params[0].Type == Special:
			p.fail(outcome.CodeInvalid, key, "cannot sort by %s, a %s parameter", name, params[0].Type)
			continue
		}
		if slices.ContainsFunc(p.q.Sort, func(k SortKey) bool { return k.Param == name }) {
			continue // the first key on a parameter decides
		}
		p.q.Sort = append(p.q.Sort, SortKey{Param: name, Type: params[0].Type, Descending: desc})
		p.sortRaw = append(p.sortRaw, item)
	}
}

// elements adds the element names of one _elements value.
func (p *parser) elements(key, v string) {
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e == "" || slices.Contains(p.q.Elements, e) {
			continue
		}
		if !elementName(e) {
			p.fail(outcome.CodeInvalid, key, "%s is not an element name", quote(e))
			continue
		}
		if len(p.q.Elements) >= MaxOr {
			p.fail(outcome.CodeTooCostly, key, "more than %d elements", MaxOr)
			return
		}
		p.q.Elements = append(p.q.Elements, e)
	}
}

// elementName: an element (identifier) or a path of them (Type.element).
func elementName(s string) bool {
	for _, part := range strings.Split(s, ".") {
		if part == "" || !(part[0] >= 'a' && part[0] <= 'z' || part[0] >= 'A' && part[0] <= 'Z') {
			return false
		}
		for i := 1; i < len(part); i++ {
			if c := part[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}

// include parses one _include or _revinclude value (search.html#include):
// [type]:[parameter][:target type], [type]:* or *. A value names one
// include; several are separate parameters.
func (p *parser) include(key string, reverse, iterate bool, v string) {
	if len(p.q.Include) >= MaxOr {
		p.fail(outcome.CodeTooCostly, key, "more than %d includes", MaxOr)
		return
	}
	inc := Include{Reverse: reverse, Iterate: iterate}
	parts := strings.Split(v, ":")
	name := strings.SplitN(key, ":", 2)[0]
	switch {
	case v == "*":
		inc.Type, inc.Param = "*", "*"
	case len(parts) == 2 || len(parts) == 3:
		inc.Type, inc.Param = parts[0], parts[1]
		if p.r.types[inc.Type] == nil {
			p.fail(outcome.CodeInvalid, key, "%s: %s is not a resource type", name, quote(inc.Type))
			return
		}
		if inc.Param == "*" && len(parts) == 2 {
			break
		}
		prm, ok := p.r.Param(inc.Type, inc.Param)
		if !ok || prm.Type != Reference {
			p.fail(outcome.CodeInvalid, key, "%s: %s is not a reference parameter of %s", name, quote(inc.Param), inc.Type)
			return
		}
		if len(parts) == 3 {
			inc.Target = parts[2]
			if p.r.types[inc.Target] == nil || (len(prm.Targets) > 0 && !slices.Contains(prm.Targets, inc.Target)) {
				p.fail(outcome.CodeInvalid, key, "%s: %s.%s cannot refer to %s", name, inc.Type, inc.Param, quote(inc.Target))
				return
			}
		}
	default:
		p.fail(outcome.CodeInvalid, key, "%s takes [type]:[parameter][:target type], [type]:* or * (repeat the parameter for several), not %s", name, quote(v))
		return
	}
	if iterate {
		key = name + ":iterate"
	}
	p.q.Include = append(p.q.Include, inc)
	p.incs = append(p.incs, pair{key, v})
}

// finish applies the defaults and the rules between result parameters.
func (p *parser) finish() {
	if p.q.Count < 0 {
		p.q.Count = p.opts.DefaultCount
	}
	if p.q.Summary == "count" {
		// search.html#summary: count returns the total and no entries.
		p.q.Count, p.q.Total = 0, TotalAccurate
	}
	if p.q.Count == 0 && p.q.Total == "" {
		p.q.Total = TotalAccurate // _count=0 asks for the total only
	}
	if p.q.Summary == "text" && len(p.q.Include) > 0 {
		// search.html#include: _include and _revinclude cannot be mixed with _summary=text.
		p.fail(outcome.CodeInvalid, "_summary", "_include and _revinclude cannot be combined with _summary=text")
	}
}

// self renders the canonical query string of what was applied.
func (p *parser) self() string {
	pairs := p.applied
	sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].key < pairs[j].key })
	if len(p.sortRaw) > 0 {
		pairs = append(pairs, pair{"_sort", strings.Join(p.sortRaw, ",")})
	}
	pairs = append(pairs, pair{"_count", strconv.Itoa(p.q.Count)})
	if p.q.Total != "" {
		pairs = append(pairs, pair{"_total", string(p.q.Total)})
	}
	if p.q.Summary != "" {
		pairs = append(pairs, pair{"_summary", p.q.Summary})
	}
	if len(p.q.Elements) > 0 {
		pairs = append(pairs, pair{"_elements", strings.Join(p.q.Elements, ",")})
	}
	pairs = append(pairs, p.incs...)
	var b strings.Builder
	for i, kv := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		escapeQuery(&b, kv.key)
		b.WriteByte('=')
		escapeQuery(&b, kv.value)
	}
	return b.String()
}

// escapeQuery writes s percent-encoded for a query component, leaving the
// characters FHIR query strings are read with (: / , $ and the like)
// as they are, so self links stay readable (RFC 3986 §3.4).
func escapeQuery(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("-._~:/,$@!'()*?", c) >= 0: // not ';', which Go's url.ParseQuery refuses
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
}
