// Package fhirpath evaluates the subset of FHIRPath (http://hl7.org/fhirpath/N1)
// that search parameter expressions use, over resources decoded by
// encoding/json with UseNumber: map[string]any, []any, string, bool and
// json.Number.
//
// Supported: paths (choice elements included: Observation.value finds
// valueQuantity, json.html#choice), indexers, `|`, `=` `!=` `~` `!~` `<`
// `>` `<=` `>=`, `and` `or` `xor` `implies`, `in` `contains`, `is` `as`,
// string, number, boolean and date literals, `{}`, `$this`, `$index`,
// `%resource` (also %context, %rootResource, %ucum, %sct, %loinc), and the
// functions empty, exists, not, where, select, all, allTrue, anyTrue,
// allFalse, anyFalse, first, last, tail, skip, take, single, count,
// distinct, union, combine, ofType, as, is, resolve, extension, hasValue,
// iif, startsWith, endsWith, contains, lower, upper, length, children,
// descendants and trace. Anything else (arithmetic, quantity literals,
// terminology functions) is refused by Compile.
//
// Where the specification lets evaluation signal an error on data (a
// collection where one item is expected) and a search index would only
// lose a value, the evaluator takes the lenient reading, as servers do for
// the R4 expressions written before `ofType`: `as` filters a collection
// like ofType, and a non-empty collection is true in a boolean context.
// What needs a single item (is, single(), < and the other comparisons,
// the string functions) still fails with an error on several; none of the
// official expressions does on the official examples.
package fhirpath

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// Node is one item of a FHIRPath collection.
type Node struct {
	// Value is the JSON value: map[string]any, string, bool or
	// json.Number. It is nil for a primitive that has only extensions, and
	// for the target of a reference that resolve() could type but not read.
	Value any
	// Type is the FHIR type when the JSON states it: a choice element's
	// suffix ("Quantity", "dateTime"), a resource's resourceType, or the
	// target type resolve() read from a reference. Empty otherwise.
	Type string
	// ext is a primitive's companion object (the "_birthDate" of
	// "birthDate"), which holds its id and extensions.
	ext map[string]any
}

// Expression is a compiled FHIRPath expression, safe for concurrent use.
type Expression struct {
	src  string
	root expr
}

// String returns the expression's source.
func (e *Expression) String() string { return e.src }

// cache holds compiled expressions by source: the same expressions are
// compiled for every registry and every base type. It is bounded so that
// expressions from requests cannot grow it without limit.
var cache = struct {
	sync.RWMutex
	m map[string]*Expression
}{m: map[string]*Expression{}}

const maxCached = 8192

// Compile parses an expression. Unsupported constructs are errors here,
// never at evaluation.
func Compile(src string) (*Expression, error) {
	cache.RLock()
	e, ok := cache.m[src]
	cache.RUnlock()
	if ok {
		return e, nil
	}
	p, err := newParser(src)
	if err != nil {
		return nil, fmt.Errorf("fhirpath: %q: %w", src, err)
	}
	root, err := p.parseAll()
	if err != nil {
		return nil, fmt.Errorf("fhirpath: %q: %w", src, err)
	}
	e = &Expression{src: src, root: root}
	cache.Lock()
	if len(cache.m) < maxCached {
		cache.m[src] = e
	}
	cache.Unlock()
	return e, nil
}

// MustCompile is Compile for expressions known to be valid; it panics on
// an error.
func MustCompile(src string) *Expression {
	e, err := Compile(src)
	if err != nil {
		panic(err)
	}
	return e
}

// Evaluate runs the expression with resource (a decoded resource: a
// map[string]any) as its context and %resource.
func (e *Expression) Evaluate(resource any) ([]Node, error) {
	root := newNode(resource, nil, "")
	c := &ctx{root: root}
	focus := []Node{root}
	c.this = focus
	return e.root.eval(c, focus)
}

// EvaluateAt runs the expression with focus as its context and resource as
// %resource: a composite search parameter's components are evaluated at
// each node its expression selects.
func (e *Expression) EvaluateAt(resource any, focus Node) ([]Node, error) {
	c := &ctx{root: newNode(resource, nil, "")}
	f := []Node{focus}
	c.this = f
	return e.root.eval(c, f)
}

// Branch is one member of an expression's top-level union.
type Branch struct {
	// Expr is the member's source, parentheses included.
	Expr string
	// Type is the type name the member's path starts from ("Observation"
	// in "(Observation.value.ofType(Quantity))"), or "" when it starts from
	// something else (a lower-case element name, %resource, a function).
	Type string
}

// Branches splits an expression at its top-level `|` operators. The
// official search parameters shared by several resource types are unions
// with one member per type ("Patient.name | Practitioner.name"); the
// search registry keeps, for each type, the members that start from it.
func (e *Expression) Branches() []Branch {
	var out []Branch
	var walk func(x expr)
	walk = func(x expr) {
		if u, ok := x.(*union); ok {
			walk(u.l)
			walk(u.r)
			return
		}
		start, end := x.span()
		out = append(out, Branch{Expr: strings.TrimSpace(e.src[start:end]), Type: rootType(x)})
	}
	walk(e.root)
	return out
}

// rootType returns the type name an expression's path starts from.
func rootType(x expr) string {
	for {
		switch v := x.(type) {
		case *typeRoot:
			return v.name
		case *invoke:
			x = v.left
		case *indexer:
			x = v.left
		case *typeOp:
			x = v.left
		case *binary:
			x = v.l
		case *paren:
			x = v.inner
		default:
			return ""
		}
	}
}

// newNode makes the node of a JSON value, typing resources by their
// resourceType.
func newNode(v any, ext map[string]any, typ string) Node {
	if typ == "" {
		if m, ok := v.(map[string]any); ok {
			if rt, ok := m["resourceType"].(string); ok {
				typ = rt
			}
		}
	}
	return Node{Value: v, Type: typ, ext: ext}
}

// AsString returns the value of a string-valued node (string, code, uri,
// date, …).
func (n Node) AsString() (string, bool) {
	s, ok := n.Value.(string)
	return s, ok
}

// AsMap returns the object of a complex-valued node.
func (n Node) AsMap() (map[string]any, bool) {
	m, ok := n.Value.(map[string]any)
	return m, ok
}

// AsNumber returns the value of a numeric node, as written.
func (n Node) AsNumber() (json.Number, bool) {
	v, ok := n.Value.(json.Number)
	return v, ok
}
