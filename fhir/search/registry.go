// Package search holds the search parameter registry and computes the
// index entries a resource is found by (search.html).
//
// The registry serves every SearchParameter of FHIR R4 (conformance/defs)
// for every resource type, plus the US Core 3.1.0 parameters R4 lacks
// (Patient race and ethnicity), and SearchParameter resources added with
// With. Each parameter carries the part of its official expression that
// applies to the type, its targets, modifiers, comparators and, for
// composites, its components.
//
// The common parameters are those of the specification, base Resource or
// DomainResource: _id, _lastUpdated, _tag, _profile, _security and _source
// are indexed from their expressions like any other. _text, which R4
// leaves to the server, indexes the narrative (text.div) as folded plain
// text for a contains match. _content (full text over the whole resource)
// and _query (named queries: Kiln defines none) are not served: they are
// listed by Unsupported, with the reason, for the CapabilityStatement.
// _type, _has, _list, _sort, _count, _include and the other result
// parameters are not search parameters of a resource and are the query
// layer's.
package search

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kiln-fhir/kiln/conformance/defs"
	"github.com/kiln-fhir/kiln/fhir/fhirpath"
)

// Type is a search parameter type (search.html#ptypes).
type Type string

const (
	Number    Type = "number"
	Date      Type = "date"
	String    Type = "string"
	Token     Type = "token"
	Reference Type = "reference"
	Composite Type = "composite"
	Quantity  Type = "quantity"
	URI       Type = "uri"
	Special   Type = "special"
)

// Param is a search parameter of one resource type.
type Param struct {
	Name string // the code used in URLs: "birthdate"
	Type Type
	URL  string // canonical URL of its SearchParameter
	// Expression is the FHIRPath that selects the values for this resource
	// type: the members of the official expression that start from this
	// type (or Resource/DomainResource). Empty for _text, which indexes the
	// narrative.
	Expression  string
	Targets     []string // reference: the resource types it may point to
	Modifiers   []string // the modifiers search.html defines for the type, or the definition's own list
	Comparators []string // date, number, quantity: eq ne gt lt ge le sa eb ap
	Components  []Component
	// Phonetic parameters index Phonetic keys rather than folded text.
	Phonetic bool
	// MultipleOr and MultipleAnd say whether a value may list several
	// alternatives (a,b) and whether the parameter may repeat; true unless
	// the definition says otherwise.
	MultipleOr, MultipleAnd bool

	expr      *fhirpath.Expression
	narrative bool // _text
}

// Component is one part of a composite parameter.
type Component struct {
	Name       string // the code of the parameter that defines the part: "component-code"
	Type       Type
	URL        string // that parameter's canonical URL
	Expression string // relative to each node the composite's expression selects
	expr       *fhirpath.Expression
}

// Unsupported is a parameter of the specification the registry does not
// serve for a type, and why: for the CapabilityStatement and the README.
type Unsupported struct {
	Type, Name, URL, Reason string
}

// Registry is an immutable set of search parameters, safe for concurrent
// use. Adding parameters (With) makes a new registry, which callers swap
// in once the index has been rebuilt for it.
type Registry struct {
	types       map[string]*typeParams
	unsupported []Unsupported
	bases       []string
	loc         *time.Location
}

type typeParams struct {
	byName map[string]*Param
	sorted []*Param // by name, for a stable extraction order
}

// Option configures a registry.
type Option func(*Registry)

// WithBase names the absolute base URLs under which this server's
// resources live ("https://kiln.example/fhir"). A reference to one of them
// is indexed as the relative reference it is (search.html#reference: the
// two forms find each other); other absolute references stay absolute.
func WithBase(urls ...string) Option {
	return func(r *Registry) {
		for _, u := range urls {
			if u = strings.TrimRight(u, "/"); u != "" {
				r.bases = append(r.bases, u+"/")
			}
		}
	}
}

// WithLocation sets the time zone of dates and times that have none
// (search.html#date: the server's local zone). Default UTC.
func WithLocation(loc *time.Location) Option {
	return func(r *Registry) { r.loc = loc }
}

// notServed are the specification's parameters the registry leaves out.
var notServed = map[string]string{
	"_content": "full-text search over the whole resource is not implemented; _text searches the narrative",
	"_query":   "named queries: Kiln defines none, so every _query value is refused (search.html#query)",
}

// New builds the registry of the R4 search parameters, the US Core
// 3.1.0 parameters R4 lacks and Kiln's own (defs.KilnSearchParameters). A parameter whose expression Kiln cannot
// evaluate is left out and listed by Unsupported (none of R4's are).
func New(opts ...Option) (*Registry, error) {
	r := &Registry{types: map[string]*typeParams{}, loc: time.UTC}
	for _, o := range opts {
		o(r)
	}
	for _, t := range defs.Types() {
		r.types[t] = &typeParams{byName: map[string]*Param{}}
	}
	all := defs.SearchParameters()
	byURL := make(map[string]defs.SearchParameter, len(all))
	for _, sp := range all {
		byURL[sp.URL] = sp
	}
	for _, sp := range all {
		if err := r.add(sp, byURL, false); err != nil {
			return nil, err
		}
	}
	// US Core restates most R4 parameters under the same code (some with
	// broken expressions: Goal target-date is "Goal.id"); the R4
	// definition wins, and US Core adds what is new.
	for _, sp := range defs.USCoreSearchParameters() {
		if err := r.add(sp, byURL, false); err != nil {
			return nil, err
		}
	}
	// Kiln's own (PaymentReconciliation detail-request, for the portal
	// rules, record.go).
	for _, sp := range defs.KilnSearchParameters() {
		if err := r.add(sp, byURL, false); err != nil {
			return nil, err
		}
	}
	r.sort()
	return r, nil
}

var defaultRegistry = sync.OnceValues(func() (*Registry, error) { return New() })

// Default returns the registry of New() without options, built once.
func Default() *Registry {
	r, err := defaultRegistry()
	if err != nil {
		panic(err) // the embedded definitions are tested to build
	}
	return r
}

// With returns a registry that also serves the given SearchParameter
// resources (created through the API), each for its base types; a code a
// type already has is replaced. Unlike New, a parameter Kiln cannot serve
// is an error.
func (r *Registry) With(params ...defs.SearchParameter) (*Registry, error) {
	n := &Registry{types: make(map[string]*typeParams, len(r.types)), bases: r.bases, loc: r.loc,
		unsupported: slices.Clone(r.unsupported)}
	for t, tp := range r.types {
		n.types[t] = &typeParams{byName: maps.Clone(tp.byName)}
	}
	byURL := map[string]defs.SearchParameter{}
	for _, sp := range defs.SearchParameters() {
		byURL[sp.URL] = sp
	}
	for _, sp := range params {
		byURL[sp.URL] = sp
	}
	for _, sp := range params {
		if err := n.add(sp, byURL, true); err != nil {
			return nil, err
		}
	}
	n.sort()
	return n, nil
}

// add registers a SearchParameter for each of its base types. custom
// parameters replace existing codes and fail on what cannot be served;
// built-in ones keep the first definition of a code and record failures.
func (r *Registry) add(sp defs.SearchParameter, byURL map[string]defs.SearchParameter, custom bool) error {
	fail := func(typ, reason string) error {
		if custom {
			return fmt.Errorf("search: SearchParameter %s (%s): %s", sp.URL, sp.Code, reason)
		}
		r.unsupported = append(r.unsupported, Unsupported{Type: typ, Name: sp.Code, URL: sp.URL, Reason: reason})
		return nil
	}
	switch {
	case sp.Code == "":
		return fail("", "no code")
	case custom && !validCode(sp.Code):
		// search.html: ":" starts a modifier, "." a chain, "$" a
		// composite's parts; "_" is the specification's own.
		return fail("", "a custom code is a letter followed by letters, digits, - or _")
	case len(sp.Base) == 0:
		return fail("", "no base type")
	}
	var types []string
	for _, b := range sp.Base {
		switch {
		case b == "Resource" || b == "DomainResource":
			for t := range r.types {
				if b == "Resource" || isDomainResource(t) {
					types = append(types, t)
				}
			}
		case r.types[b] != nil:
			types = append(types, b)
		default:
			if err := fail(b, "base "+b+" is not an R4 resource type"); err != nil {
				return err
			}
		}
	}
	sort.Strings(types)

	var whole *fhirpath.Expression
	if sp.Expression != "" {
		var err error
		if whole, err = fhirpath.Compile(sp.Expression); err != nil {
			for _, t := range types {
				if err := fail(t, err.Error()); err != nil {
					return err
				}
			}
			return nil
		}
	}
	for _, typ := range types {
		tp := r.types[typ]
		if _, exists := tp.byName[sp.Code]; exists && !custom {
			continue
		}
		if reason, ok := notServed[sp.Code]; ok && !custom {
			if err := fail(typ, reason); err != nil {
				return err
			}
			continue
		}
		p, reason := build(sp, typ, whole, byURL)
		if p == nil {
			if err := fail(typ, reason); err != nil {
				return err
			}
			continue
		}
		tp.byName[sp.Code] = p
	}
	return nil
}

// build makes the Param of a SearchParameter for one type, or says why it
// cannot.
func build(sp defs.SearchParameter, typ string, whole *fhirpath.Expression, byURL map[string]defs.SearchParameter) (*Param, string) {
	p := &Param{
		Name: sp.Code, Type: Type(sp.Type), URL: sp.URL,
		Targets:     sp.Target,
		Modifiers:   sp.Modifier,
		Comparators: sp.Comparator,
		Phonetic:    sp.XPathUsage == "phonetic",
		MultipleOr:  sp.MultipleOr == nil || *sp.MultipleOr,
		MultipleAnd: sp.MultipleAnd == nil || *sp.MultipleAnd,
	}
	if !knownTypes[p.Type] {
		return nil, "unknown parameter type " + sp.Type
	}
	if len(p.Modifiers) == 0 {
		p.Modifiers = modifiers[p.Type]
	}
	if len(p.Comparators) == 0 && (p.Type == Date || p.Type == Number || p.Type == Quantity) {
		p.Comparators = comparators
	}
	switch {
	case sp.Code == "_text" && sp.Expression == "":
		p.narrative = true
		return p, ""
	case whole == nil:
		return nil, "no expression"
	}
	var keep []string
	for _, b := range whole.Branches() {
		if b.Type == "" || b.Type == typ || b.Type == "Resource" || (b.Type == "DomainResource" && isDomainResource(typ)) {
			keep = append(keep, b.Expr)
		}
	}
	if len(keep) == 0 {
		return nil, "the expression has no path for " + typ
	}
	p.Expression = strings.Join(keep, " | ")
	var err error
	if p.expr, err = fhirpath.Compile(p.Expression); err != nil {
		return nil, err.Error()
	}
	for _, c := range sp.Component {
		def, ok := byURL[c.Definition]
		if !ok {
			return nil, "component " + c.Definition + " is not a known SearchParameter"
		}
		comp := Component{Name: def.Code, Type: Type(def.Type), URL: def.URL, Expression: c.Expression}
		if comp.expr, err = fhirpath.Compile(c.Expression); err != nil {
			return nil, err.Error()
		}
		p.Components = append(p.Components, comp)
	}
	if p.Type == Composite && len(p.Components) == 0 {
		return nil, "composite without components"
	}
	return p, ""
}

var knownTypes = map[Type]bool{Number: true, Date: true, String: true, Token: true, Reference: true,
	Composite: true, Quantity: true, URI: true, Special: true}

// modifiers are those search.html defines per parameter type; a
// reference also takes :[type] (any of its targets), which is not listed.
var modifiers = map[Type][]string{
	String:    {"missing", "exact", "contains"},
	Token:     {"missing", "text", "not", "above", "below", "in", "not-in", "of-type"},
	Reference: {"missing", "type", "identifier", "above", "below"},
	URI:       {"missing", "above", "below"},
	Date:      {"missing"},
	Number:    {"missing"},
	Quantity:  {"missing"},
	Composite: {"missing"},
	Special:   {"missing"},
}

var comparators = []string{"eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", "ap"}

func validCode(code string) bool {
	for i := 0; i < len(code); i++ {
		c := code[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '-' || c == '_')) {
			return false
		}
	}
	return code != ""
}

// isDomainResource: every resource but Bundle, Binary and Parameters
// specialises DomainResource.
func isDomainResource(typ string) bool {
	return typ != "Bundle" && typ != "Binary" && typ != "Parameters"
}

func (r *Registry) sort() {
	for _, tp := range r.types {
		tp.sorted = tp.sorted[:0]
		for _, p := range tp.byName {
			tp.sorted = append(tp.sorted, p)
		}
		sort.Slice(tp.sorted, func(i, j int) bool { return tp.sorted[i].Name < tp.sorted[j].Name })
	}
	sort.Slice(r.unsupported, func(i, j int) bool {
		a, b := r.unsupported[i], r.unsupported[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.Name < b.Name
	})
}

// Param returns a resource type's parameter by code (case-sensitive:
// search.html says parameter names are).
func (r *Registry) Param(typ, name string) (*Param, bool) {
	tp := r.types[typ]
	if tp == nil {
		return nil, false
	}
	p, ok := tp.byName[name]
	return p, ok
}

// Params lists a resource type's parameters, sorted by code. The slice is
// shared: callers must not modify it.
func (r *Registry) Params(typ string) []*Param {
	if tp := r.types[typ]; tp != nil {
		return tp.sorted
	}
	return nil
}

// Types lists the resource types the registry knows, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.types))
	for t := range r.types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Unsupported lists the specification's parameters the registry does not
// serve, by type and code.
func (r *Registry) Unsupported() []Unsupported { return slices.Clone(r.unsupported) }

// Compartment returns the parameters through which a resource of type typ
// belongs to a compartment (compartmentdefinition.html): for "Patient"
// and "Observation", subject and performer. Nil when the type is never
// in the compartment. "{def}" stands for the compartment's resource
// itself.
func (r *Registry) Compartment(compartment, typ string) []string {
	c, ok := defs.Compartment(compartment)
	if !ok {
		return nil
	}
	for _, res := range c.Resource {
		if res.Code == typ {
			return res.Param
		}
	}
	return nil
}
