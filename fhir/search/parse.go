package search

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// ParseOptions say how Parse treats what it cannot apply.
type ParseOptions struct {
	// Strict refuses unknown and unsupported parameters with a 400
	// (Prefer: handling=strict); otherwise they are ignored and reported
	// (handling=lenient, the specification's default).
	Strict bool
	// DefaultCount is the page size when _count is absent (0: 50).
	DefaultCount int
	// MaxCount is the largest page size; a larger _count is lowered to it
	// (0: 1000).
	MaxCount int
	// Base is the base URL this request reached, when the server has no
	// configured one: absolute references under it are made relative, as
	// under the registry's bases (search.html#reference).
	Base string
}

// Report says what Parse left out of a search, for the warning
// OperationOutcome of a lenient search (search.mode outcome), and gives
// the query actually applied, for the Bundle's self link.
type Report struct {
	// Ignored lists, in parameter order, what was not applied as given.
	Ignored []Ignored
	// Self is the canonical query string of what was applied: search
	// parameters sorted by name (repeats in the order given), then _sort,
	// _count (always, the page size used), _total, _summary, _elements,
	// _include and _revinclude. Ignored parameters and the paging cursor
	// (_page) are left out: a next link adds its own _page.
	Self string
}

// Ignored is a parameter (or value) Parse did not apply, and why.
type Ignored struct {
	Param  string // as written, modifiers included: "name:foo", "_list"
	Reason string
}

// Issues renders the report as warnings for an OperationOutcome, one per
// ignored parameter; nil when nothing was ignored.
func (r Report) Issues() []outcome.Issue {
	var out []outcome.Issue
	for _, ig := range r.Ignored {
		out = append(out, outcome.Issue{Severity: outcome.Warning, Code: outcome.CodeNotSupported,
			Diagnostics: ig.Reason, Expression: []string{ig.Param}})
	}
	return out
}

// The bounds of one search: past them a query is refused as too costly
// rather than left to run (the work a query asks for grows with each).
const (
	MaxClauses  = 100     // search parameters (each repeat counts)
	MaxOr       = 100     // comma-separated values in one parameter
	MaxValueLen = 4 << 10 // bytes in one parameter's value
	MaxDepth    = 4       // chained links and nested _has in one parameter
	maxParams   = 200     // occurrences of any parameter, unknown ones included
	maxKeyLen   = 256     // bytes in a parameter name with its modifiers and chain
)

// Parse turns a query string into a Query with the Default registry.
func Parse(types []string, params url.Values, opts ParseOptions) (*Query, Report, error) {
	return Default().Parse(types, params, opts)
}

// Parse turns a query string (search.html) into a typed Query. types are
// the resource types searched: one for a type-level search, none for a
// system-level search, where _type may name them. Values are normalised
// as Extract normalises index entries (Fold, Phonetic, date and number
// ranges, references relative to the registry's base).
//
// A comma separates alternatives (OR) and a repeated parameter is another
// clause (AND); an empty value is ignored. An unknown parameter, or one
// Kiln does not support (_list, _filter, _contained=true), is ignored and
// reported, or refused in strict mode. Everything else that cannot be
// applied is refused whatever the mode: an unknown modifier, a malformed
// value, a parameter that is not defined for every type searched, _content
// and _query, and a query past the bounds above. The error is an
// *outcome.Error with status 400 and an issue per problem, its expression
// naming the parameter.
func (r *Registry) Parse(types []string, params url.Values, opts ParseOptions) (*Query, Report, error) {
	if opts.DefaultCount <= 0 {
		opts.DefaultCount = 50
	}
	if opts.MaxCount <= 0 {
		opts.MaxCount = 1000
	}
	opts.DefaultCount = min(opts.DefaultCount, opts.MaxCount)
	n := 0
	for _, vs := range params {
		n += max(len(vs), 1)
	}
	if n > maxParams {
		return nil, Report{}, outcome.Newf(http.StatusBadRequest, outcome.CodeTooCostly,
			"the query has %d parameters; at most %d are served", n, maxParams)
	}
	bases := r.bases
	if b := strings.TrimRight(opts.Base, "/"); b != "" {
		bases = append(slices.Clip(bases), b+"/")
	}
	p := &parser{r: r, opts: opts, x: extractor{loc: r.loc, bases: bases},
		q: &Query{Count: -1}, and: map[string]int{}}
	if !p.setTypes(types, params) {
		return nil, Report{}, &outcome.Error{Status: http.StatusBadRequest, Issues: p.issues}
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "_type" {
			continue // setTypes
		}
		p.param(k, params[k])
	}
	p.finish()
	if len(p.issues) > 0 {
		return nil, Report{}, &outcome.Error{Status: http.StatusBadRequest, Issues: p.issues}
	}
	p.report.Self = p.self()
	return p.q, p.report, nil
}

type parser struct {
	r    *Registry
	opts ParseOptions
	x    extractor // normalises references as Extract does
	q    *Query
	// types are the searched types; nil is every type (system level).
	types    []string
	allTypes []string // r.Types(), when needed

	issues  []outcome.Issue
	report  Report
	applied []pair         // search parameters as applied, for Self
	and     map[string]int // clauses of each parameter (multipleAnd)
	clauses int
	sortRaw []string // the _sort keys applied, as written
	incs    []pair   // the _include and _revinclude applied, for Self
}

type pair struct{ key, value string }

// fail records a problem that refuses the search.
func (p *parser) fail(code, key, format string, args ...any) {
	is := outcome.Issue{Severity: outcome.SevError, Code: code, Diagnostics: fmt.Sprintf(format, args...)}
	if key != "" {
		is.Expression = []string{key}
	}
	if n := len(p.issues); n > 0 && reflect.DeepEqual(p.issues[n-1], is) {
		return // a repeated parameter with the same problem
	}
	p.issues = append(p.issues, is)
}

// ignore leaves out a parameter Kiln does not know or support: a warning
// in lenient mode, a refusal in strict mode (search.html#errors).
func (p *parser) ignore(key, reason string) {
	if p.opts.Strict {
		p.fail(outcome.CodeNotSupported, key, "%s", reason)
		return
	}
	ig := Ignored{Param: key, Reason: reason}
	if n := len(p.report.Ignored); n > 0 && p.report.Ignored[n-1] == ig {
		return
	}
	p.report.Ignored = append(p.report.Ignored, ig)
}

// quote shows a client value in a message, shortened: diagnostics may
// echo input but should stay readable.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 {
			cut--
		}
		s = s[:cut] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// setTypes sets the searched types: those of a type-level search, or at
// system level the _type list (search.html#_type), or every type. false
// means the types are wrong, and nothing else can be checked.
func (p *parser) setTypes(types []string, params url.Values) bool {
	for _, t := range types {
		if p.r.types[t] == nil {
			p.fail(outcome.CodeNotSupported, "", "%s is not a resource type Kiln serves", quote(t))
			continue
		}
		if !slices.Contains(p.q.Types, t) {
			p.q.Types = append(p.q.Types, t)
		}
	}
	if len(p.issues) > 0 {
		return false
	}
	vs, ok := params["_type"]
	if !ok {
		p.types = p.q.Types
		return true
	}
	switch {
	case len(types) > 0:
		p.ignore("_type", "_type applies to a system-level search only")
		p.types = p.q.Types
		return true
	case len(vs) > 1:
		p.fail(outcome.CodeInvalid, "_type", "_type may appear only once; list the types separated by commas")
		return false
	}
	for _, t := range strings.Split(vs[0], ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if p.r.types[t] == nil {
			p.fail(outcome.CodeInvalid, "_type", "%s is not a resource type", quote(t))
			continue
		}
		if !slices.Contains(p.q.Types, t) {
			p.q.Types = append(p.q.Types, t)
		}
	}
	if len(p.issues) > 0 {
		return false
	}
	if len(p.q.Types) > 0 {
		p.types = p.q.Types
		p.applied = append(p.applied, pair{"_type", strings.Join(p.q.Types, ",")})
	}
	return true
}

// scope returns the types searched, every type when the search is
// system-wide.
func (p *parser) scope(types []string) []string {
	if types != nil {
		return types
	}
	if p.allTypes == nil {
		p.allTypes = p.r.Types()
	}
	return p.allTypes
}

// param handles one parameter name with all its values.
func (p *parser) param(key string, values []string) {
	if len(key) > maxKeyLen {
		p.fail(outcome.CodeTooCostly, quote(key), "parameter name longer than %d bytes", maxKeyLen)
		return
	}
	for _, v := range values {
		if len(v) > MaxValueLen {
			p.fail(outcome.CodeTooCostly, key, "value longer than %d bytes", MaxValueLen)
			return
		}
	}
	name, mod, _ := strings.Cut(key, ":")
	if strings.HasPrefix(key, "_has:") {
		name, mod = "_has", ""
	}
	switch name {
	case "_sort", "_count", "_total", "_summary", "_elements", "_include", "_revinclude",
		"_page", "_contained", "_containedType":
		p.resultParam(key, name, mod, values)
		return
	case "_format", "_pretty":
		// HTTP parameters (http.html#parameters), served by the REST
		// layer; kept in the self link so that paging keeps them.
		for _, v := range values {
			if v != "" {
				p.applied = append(p.applied, pair{key, v})
			}
		}
		return
	case "_list":
		p.list(key, mod, values)
		return
	case "_filter":
		p.ignore(key, "_filter is not supported")
		return
	case "_content", "_query":
		// search.html#query: an unknown named query SHALL be refused; and
		// a full-text search ignored would return what was not asked for.
		reason, _ := p.unsupported(name)
		p.fail(outcome.CodeNotSupported, key, "%s is not supported: %s", name, reason)
		return
	}
	if d := strings.Count(key, ".") + strings.Count(key, "_has:"); d > MaxDepth {
		p.fail(outcome.CodeTooCostly, key, "chained %d levels deep; at most %d levels are served", d, MaxDepth)
		return
	}
	for _, v := range values {
		p.clause(key, v)
	}
}

// unsupported is the registry's reason for leaving out a parameter of
// the specification, if it did.
func (p *parser) unsupported(name string) (string, bool) {
	for _, u := range p.r.unsupported {
		if u.Name == name && (p.types == nil || slices.Contains(p.types, u.Type)) {
			return u.Reason, true
		}
	}
	reason, ok := notServed[name]
	return reason, ok
}

// clause parses one occurrence of a search parameter into a Filter clause.
func (p *parser) clause(key, raw string) {
	items := splitEscaped(raw, ',', -1)
	if len(items) > MaxOr {
		p.fail(outcome.CodeTooCostly, key, "%d values; at most %d alternatives are served", len(items), MaxOr)
		return
	}
	empty := true
	for _, it := range items {
		if strings.TrimSpace(it) != "" {
			empty = false
			break
		}
	}
	if empty {
		return // search.html#errors: an empty value is ignored
	}
	var c Clause
	l, ok := p.key(&c, p.types, key, key, 0)
	if !ok || l == nil {
		return
	}
	vs, ok := p.values(key, l, raw, items)
	if !ok || len(vs) == 0 {
		return
	}
	if len(vs) > 1 && !l.multipleOr {
		p.fail(outcome.CodeNotSupported, key, "%s takes one value at a time (its definition says multipleOr false): repeat the parameter", l.name)
		return
	}
	if c.Chain == nil && c.Has == nil {
		if p.and[l.name]++; p.and[l.name] > 1 && !l.multipleAnd {
			p.fail(outcome.CodeNotSupported, key, "%s may appear only once (its definition says multipleAnd false)", l.name)
			return
		}
	}
	if p.clauses++; p.clauses > MaxClauses {
		if p.clauses == MaxClauses+1 {
			p.fail(outcome.CodeTooCostly, key, "more than %d search parameters", MaxClauses)
		}
		return
	}
	l.clause.Values = vs
	p.q.Filter = append(p.q.Filter, c)
	p.applied = append(p.applied, pair{key, raw})
}

// leaf is the parameter a clause's values belong to: the parameter
// itself, or the last of a chain or _has.
type leaf struct {
	clause      *Clause
	name        string
	typ         Type
	params      []*Param // the parameter for each type in scope
	modifier    string
	target      string   // reference :[type]
	targets     []string // reference: what it may point to (nil: anything)
	phonetic    bool
	multipleOr  bool
	multipleAnd bool
}

// resolve finds a parameter for every type in scope. unknown means no
// type has it; problem that some do but not all, or not with one type.
func (p *parser) resolve(types []string, name string) (params []*Param, unknown bool, problem string) {
	var missing []string
	for _, t := range p.scope(types) {
		if prm, ok := p.r.Param(t, name); ok {
			params = append(params, prm)
		} else {
			missing = append(missing, t)
		}
	}
	switch {
	case len(params) == 0:
		return nil, true, ""
	case len(missing) > 0:
		// search.html: a system search allows the parameters common to
		// every type searched.
		more := ""
		if len(missing) > 3 {
			more = fmt.Sprintf(" and %d more", len(missing)-3)
			missing = missing[:3]
		}
		return nil, false, fmt.Sprintf("%s is not a search parameter of %s%s; name the types with _type",
			name, strings.Join(missing, ", "), more)
	}
	for _, prm := range params[1:] {
		if prm.Type != params[0].Type {
			return nil, false, fmt.Sprintf("%s is a %s parameter for some types and a %s parameter for others; name one type",
				name, params[0].Type, prm.Type)
		}
	}
	return params, false, ""
}

// key parses a parameter name with its modifier, chain or _has into dst.
// whole is the name as written, for messages. It reports false when the
// parameter is not applied (refused, or ignored as unknown).
func (p *parser) key(dst *Clause, types []string, whole, key string, depth int) (*leaf, bool) {
	if rest, ok := strings.CutPrefix(key, "_has:"); ok {
		return p.has(dst, types, whole, rest, depth)
	}
	head, chain, chained := strings.Cut(key, ".")
	name, mod, hasMod := strings.Cut(head, ":")
	if hasMod && mod == "" {
		p.fail(outcome.CodeNotSupported, whole, "empty modifier on %s", name)
		return nil, false
	}
	params, unknown, problem := p.resolve(types, name)
	switch {
	case unknown && depth == 0:
		if reason, ok := p.unsupported(name); ok {
			p.ignore(whole, name+" is not supported: "+reason)
			return nil, false
		}
		p.ignore(whole, fmt.Sprintf("unknown search parameter %s for %s", quote(name), describe(p.scope(types))))
		return nil, false
	case unknown:
		p.fail(outcome.CodeNotSupported, whole, "%s is not a search parameter of %s", quote(name), describe(p.scope(types)))
		return nil, false
	case problem != "":
		p.fail(outcome.CodeNotSupported, whole, "%s", problem)
		return nil, false
	}
	l := &leaf{clause: dst, name: name, typ: params[0].Type, params: params, phonetic: params[0].Phonetic,
		multipleOr: true, multipleAnd: true}
	anyTarget := false // a reference without targets may point anywhere
	for _, prm := range params {
		l.multipleOr = l.multipleOr && prm.MultipleOr
		l.multipleAnd = l.multipleAnd && prm.MultipleAnd
		if l.typ != Reference {
			continue
		}
		anyTarget = anyTarget || len(prm.Targets) == 0
		for _, t := range prm.Targets {
			if !slices.Contains(l.targets, t) {
				l.targets = append(l.targets, t)
			}
		}
	}
	if anyTarget {
		l.targets = nil
	}
	dst.Param, dst.Type = name, l.typ
	if chained {
		return p.chain(dst, l, whole, mod, chain, depth)
	}
	if !p.modifier(l, whole, mod, hasMod) {
		return nil, false
	}
	dst.Modifier, dst.TargetType = l.modifier, l.target
	return l, true
}

func describe(types []string) string {
	if len(types) > 3 {
		return "every type searched"
	}
	return strings.Join(types, ", ")
}

// modifier checks a leaf's modifier against its definition
// (search.html#modifiers: an unknown modifier is an error).
func (p *parser) modifier(l *leaf, whole, mod string, hasMod bool) bool {
	if !hasMod {
		if l.name == "_text" {
			// _text: a search of the narrative, matched anywhere in it.
			l.modifier = "contains"
		}
		return true
	}
	allowed := true
	for _, prm := range l.params {
		allowed = allowed && slices.Contains(prm.Modifiers, mod)
	}
	switch {
	case l.typ == Reference && p.r.types[mod] != nil:
		if l.targets != nil && !slices.Contains(l.targets, mod) {
			p.fail(outcome.CodeInvalid, whole, "%s cannot refer to a %s (it refers to %s)", l.name, mod, describeTargets(l.targets))
			return false
		}
		l.modifier, l.target = "type", mod
		return true
	case mod == "type":
		allowed = false // only as :[type]
	case l.name == "_id":
		allowed = mod == "missing" || mod == "not"
	case l.name == "_text":
		allowed = mod == "missing" || mod == "contains"
	case l.typ == Special && mod != "missing":
		allowed = false
	}
	if !allowed {
		p.fail(outcome.CodeNotSupported, whole, "unknown modifier :%s on %s (a %s parameter)", mod, l.name, l.typ)
		return false
	}
	l.modifier = mod
	return true
}

func describeTargets(targets []string) string {
	if len(targets) > 6 {
		return strings.Join(targets[:6], ", ") + ", …"
	}
	return strings.Join(targets, ", ")
}

// chain parses the part of a chained parameter after the dot
// (search.html#chaining): subject.name, subject:Patient.name.
func (p *parser) chain(dst *Clause, l *leaf, whole, mod, rest string, depth int) (*leaf, bool) {
	if l.typ != Reference {
		p.fail(outcome.CodeInvalid, whole, "%s is a %s parameter: only reference parameters can be chained", l.name, l.typ)
		return nil, false
	}
	targets := l.targets
	if mod != "" {
		if p.r.types[mod] == nil {
			p.fail(outcome.CodeNotSupported, whole, "modifier :%s cannot be chained; only :[type] can", mod)
			return nil, false
		}
		if targets != nil && !slices.Contains(targets, mod) {
			p.fail(outcome.CodeInvalid, whole, "%s cannot refer to a %s (it refers to %s)", l.name, mod, describeTargets(targets))
			return nil, false
		}
		targets = []string{mod}
	}
	if targets == nil {
		targets = p.scope(nil)
	}
	next := rest
	if i := strings.IndexAny(next, ":."); i >= 0 {
		next = next[:i]
	}
	var types []string
	for _, t := range targets {
		if _, ok := p.r.Param(t, next); ok {
			types = append(types, t)
		}
	}
	if len(types) == 0 {
		p.fail(outcome.CodeNotSupported, whole, "%s is not a search parameter of %s (what %s refers to)", quote(next), describeTargets(targets), l.name)
		return nil, false
	}
	dst.Chain = &Chain{Types: types}
	return p.key(&dst.Chain.Filter, types, whole, rest, depth+1)
}

// has parses a reverse chain, _has:Type:param:rest (search.html#has).
func (p *parser) has(dst *Clause, types []string, whole, rest string, depth int) (*leaf, bool) {
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) < 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		p.fail(outcome.CodeInvalid, whole, "_has is written _has:[type]:[reference parameter]:[parameter]")
		return nil, false
	}
	typ, ref := parts[0], parts[1]
	if p.r.types[typ] == nil {
		p.fail(outcome.CodeInvalid, whole, "%s is not a resource type", quote(typ))
		return nil, false
	}
	prm, ok := p.r.Param(typ, ref)
	if !ok || prm.Type != Reference {
		p.fail(outcome.CodeInvalid, whole, "%s is not a reference parameter of %s", quote(ref), typ)
		return nil, false
	}
	if types != nil && len(prm.Targets) > 0 && !slices.ContainsFunc(types, func(t string) bool { return slices.Contains(prm.Targets, t) }) {
		p.fail(outcome.CodeInvalid, whole, "%s.%s does not refer to %s (it refers to %s)", typ, ref, strings.Join(types, ", "), describeTargets(prm.Targets))
		return nil, false
	}
	dst.Has = &Has{Type: typ, Param: ref}
	return p.key(&dst.Has.Filter, []string{typ}, whole, parts[2], depth+1)
}

// list parses _list=[id] (search.html#list): the resources a stored List
// holds, which the server resolves (Clause Param "_list", each Value's
// Code a List id). Functional lists ($current-allergies, …) name no stored
// List; Kiln keeps none, so they are refused rather than answered empty.
func (p *parser) list(key, mod string, values []string) {
	if mod != "" {
		p.fail(outcome.CodeNotSupported, key, "unknown modifier :%s on _list", mod)
		return
	}
	for _, raw := range values {
		items := splitEscaped(raw, ',', -1)
		if len(items) > MaxOr {
			p.fail(outcome.CodeTooCostly, key, "%d values; at most %d alternatives are served", len(items), MaxOr)
			return
		}
		c := Clause{Param: "_list", Type: Token}
		for _, it := range items {
			id := unescape(strings.TrimSpace(it))
			switch {
			case id == "":
				continue
			case strings.HasPrefix(id, "$"):
				p.fail(outcome.CodeNotSupported, key, "functional lists such as %s are not supported: _list takes the id of a stored List", quote(id))
				return
			case !validID(id):
				p.fail(outcome.CodeValue, key, "_list takes a List id (1 to 64 of A-Z a-z 0-9 - .), not %s", quote(id))
				return
			}
			c.Values = append(c.Values, Value{Raw: id, Code: id})
		}
		if len(c.Values) == 0 {
			continue // search.html#errors: an empty value is ignored
		}
		if p.clauses++; p.clauses > MaxClauses {
			if p.clauses == MaxClauses+1 {
				p.fail(outcome.CodeTooCostly, key, "more than %d search parameters", MaxClauses)
			}
			return
		}
		p.q.Filter = append(p.q.Filter, c)
		p.applied = append(p.applied, pair{key, raw})
	}
}

// validID is datatypes.html#id: 1 to 64 of A-Z a-z 0-9 - and .
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
