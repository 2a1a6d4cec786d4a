package fhirpath

import (
	"encoding/json"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"unsafe"
)

// ctx is the state of one evaluation.
type ctx struct {
	root  Node   // %resource
	this  []Node // $this: the item a where/select/all/exists criterion is evaluated on
	index int    // $index
}

type expr interface {
	eval(c *ctx, focus []Node) ([]Node, error)
	span() (start, end int) // byte offsets in the source
}

type pos struct{ start, end int }

func (p pos) span() (int, int) { return p.start, p.end }

type (
	literal struct {
		pos
		vals []Node
	}
	// member navigates to a child element: name, or a choice element's
	// typed property, with the primitive companion "_name" (ext).
	member struct {
		pos
		name, ext string
	}
	// typeRoot is a type name that starts a path ("Observation" in
	// Observation.code): it selects the focus items of that type.
	typeRoot struct {
		pos
		name string
	}
	invoke struct {
		pos
		left, right expr
	}
	indexer struct {
		pos
		left, index expr
	}
	paren struct {
		pos
		inner expr
	}
	union struct {
		pos
		l, r expr
	}
	binary struct {
		pos
		op   string
		l, r expr
	}
	typeOp struct {
		pos
		as   bool
		left expr
		typ  string
	}
	constant struct {
		pos
		name  string
		value *Node // nil: the resource
	}
	this     struct{ pos }
	indexVar struct{ pos }
	call     struct {
		pos
		fn   *function
		args []expr
		typ  string // the argument of ofType/as/is
	}
)

func (x *literal) eval(*ctx, []Node) ([]Node, error) { return x.vals, nil }

func (x *member) eval(_ *ctx, focus []Node) ([]Node, error) {
	var out []Node
	for _, n := range focus {
		out = x.step(out, n)
	}
	return out, nil
}

func (x *member) step(out []Node, n Node) []Node {
	obj, ok := n.Value.(map[string]any)
	if !ok {
		// A primitive's children (id, extension) live in its companion.
		if n.ext != nil {
			out = appendValue(out, n.ext[x.name], nil, "")
		}
		return out
	}
	if v, ok := obj[x.name]; ok {
		return appendValue(out, v, companion(obj, x.ext, v), "")
	}
	// Not there: a primitive with only extensions ("_name"), or a choice
	// element (value → valueQuantity, valueString, …), in one pass.
	for k, v := range obj {
		switch {
		case k == x.ext:
			out = appendValue(out, nil, v, "")
		case len(k) > len(x.name) && k[len(x.name)] >= 'A' && k[len(x.name)] <= 'Z' && strings.HasPrefix(k, x.name):
			if typ, ok := choiceSuffix[k[len(x.name):]]; ok {
				out = appendValue(out, v, companion(obj, "_"+k, v), typ)
			}
		}
	}
	return out
}

// companion returns the "_name" property of a primitive value (or array of
// primitives); complex values have none.
func companion(obj map[string]any, key string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		return nil
	case []any:
		if len(x) > 0 {
			if _, ok := x[0].(map[string]any); ok {
				return nil
			}
		}
	}
	return obj[key]
}

// appendValue appends the nodes of a property's value, arrays flattened,
// each primitive with its companion.
func appendValue(out []Node, v, comp any, typ string) []Node {
	switch x := v.(type) {
	case []any:
		comps, _ := comp.([]any)
		for i, item := range x {
			var cm map[string]any
			if i < len(comps) {
				cm, _ = comps[i].(map[string]any)
			}
			if item == nil && cm == nil {
				continue // a null placeholder (json.html#primitive)
			}
			out = append(out, newNode(item, cm, typ))
		}
	case nil:
		switch c := comp.(type) {
		case map[string]any:
			out = append(out, Node{Type: typ, ext: c})
		case []any:
			for _, item := range c {
				if cm, ok := item.(map[string]any); ok {
					out = append(out, Node{Type: typ, ext: cm})
				}
			}
		}
	default:
		cm, _ := comp.(map[string]any)
		out = append(out, newNode(x, cm, typ))
	}
	return out
}

func (x *typeRoot) eval(_ *ctx, focus []Node) ([]Node, error) {
	for i, n := range focus {
		if !n.is(x.name) {
			// Rare: the root is one resource. Copy only when filtering.
			out := append([]Node(nil), focus[:i]...)
			for _, m := range focus[i+1:] {
				if m.is(x.name) {
					out = append(out, m)
				}
			}
			return out, nil
		}
	}
	return focus, nil
}

func (x *invoke) eval(c *ctx, focus []Node) ([]Node, error) {
	l, err := x.left.eval(c, focus)
	if err != nil {
		return nil, err
	}
	if _, fn := x.right.(*call); len(l) == 0 && !fn {
		return nil, nil // functions still run on empty: empty() is true
	}
	return x.right.eval(c, l)
}

func (x *indexer) eval(c *ctx, focus []Node) ([]Node, error) {
	l, err := x.left.eval(c, focus)
	if err != nil || len(l) == 0 {
		return nil, err
	}
	iv, err := x.index.eval(c, c.this)
	if err != nil || len(iv) == 0 {
		return nil, err
	}
	i, ok := integer(iv)
	if !ok {
		return nil, fmt.Errorf("fhirpath: index is not an integer")
	}
	if i < 0 || i >= len(l) {
		return nil, nil
	}
	return l[i : i+1], nil
}

func (x *paren) eval(c *ctx, focus []Node) ([]Node, error) { return x.inner.eval(c, focus) }

func (x *union) eval(c *ctx, focus []Node) ([]Node, error) {
	l, err := x.l.eval(c, focus)
	if err != nil {
		return nil, err
	}
	r, err := x.r.eval(c, focus)
	if err != nil {
		return nil, err
	}
	switch {
	case len(l) == 0:
		return distinct(r), nil
	case len(r) == 0:
		return distinct(l), nil
	}
	return distinct(append(append(make([]Node, 0, len(l)+len(r)), l...), r...)), nil
}

func (x *typeOp) eval(c *ctx, focus []Node) ([]Node, error) {
	l, err := x.left.eval(c, focus)
	if err != nil || len(l) == 0 {
		return nil, err
	}
	if x.as {
		return ofType(l, x.typ), nil
	}
	if len(l) > 1 {
		return nil, fmt.Errorf("fhirpath: 'is' on %d items", len(l))
	}
	return boolean(l[0].is(x.typ)), nil
}

func (x *constant) eval(c *ctx, _ []Node) ([]Node, error) {
	if x.value != nil {
		return []Node{*x.value}, nil
	}
	return []Node{c.root}, nil
}

func (x *this) eval(c *ctx, _ []Node) ([]Node, error) { return c.this, nil }

func (x *indexVar) eval(c *ctx, _ []Node) ([]Node, error) {
	return []Node{{Value: json.Number(strconv.Itoa(c.index)), Type: "integer"}}, nil
}

func (x *call) eval(c *ctx, focus []Node) ([]Node, error) { return x.fn.impl(c, focus, x) }

func (x *binary) eval(c *ctx, focus []Node) ([]Node, error) {
	l, err := x.l.eval(c, focus)
	if err != nil {
		return nil, err
	}
	// and/or need the right side only when the left does not decide.
	switch x.op {
	case "and":
		if v, ok := truth(l); ok && !v {
			return boolean(false), nil
		}
	case "or":
		if v, ok := truth(l); ok && v {
			return boolean(true), nil
		}
	case "implies":
		if v, ok := truth(l); ok && !v {
			return boolean(true), nil
		}
	}
	r, err := x.r.eval(c, focus)
	if err != nil {
		return nil, err
	}
	switch x.op {
	case "and":
		lv, lok := truth(l)
		rv, rok := truth(r)
		switch {
		case rok && !rv:
			return boolean(false), nil
		case lok && rok:
			return boolean(lv && rv), nil
		}
		return nil, nil
	case "or":
		lv, lok := truth(l)
		rv, rok := truth(r)
		switch {
		case rok && rv:
			return boolean(true), nil
		case lok && rok:
			return boolean(lv || rv), nil
		}
		return nil, nil
	case "xor":
		lv, lok := truth(l)
		rv, rok := truth(r)
		if !lok || !rok {
			return nil, nil
		}
		return boolean(lv != rv), nil
	case "implies":
		lv, lok := truth(l)
		rv, rok := truth(r)
		switch {
		case rok && rv:
			return boolean(true), nil
		case lok && lv && rok:
			return boolean(false), nil
		}
		return nil, nil
	case "=", "!=":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		eq := len(l) == len(r)
		for i := 0; eq && i < len(l); i++ {
			eq = equal(l[i].Value, r[i].Value)
		}
		return boolean(eq == (x.op == "=")), nil
	case "~", "!~":
		eq := len(l) == len(r)
		for i := 0; eq && i < len(l); i++ {
			eq = false
			for j := range r {
				if equivalent(l[i].Value, r[j].Value) {
					eq = true
					break
				}
			}
		}
		return boolean(eq == (x.op == "~")), nil
	case "<", ">", "<=", ">=":
		if len(l) == 0 || len(r) == 0 {
			return nil, nil
		}
		if len(l) > 1 || len(r) > 1 {
			return nil, fmt.Errorf("fhirpath: %s on a collection", x.op)
		}
		cmp, ok := compare(l[0].Value, r[0].Value)
		if !ok {
			return nil, nil
		}
		switch x.op {
		case "<":
			return boolean(cmp < 0), nil
		case ">":
			return boolean(cmp > 0), nil
		case "<=":
			return boolean(cmp <= 0), nil
		}
		return boolean(cmp >= 0), nil
	case "in", "contains":
		item, coll := l, r
		if x.op == "contains" {
			item, coll = r, l
		}
		if len(item) == 0 {
			return nil, nil
		}
		if len(item) > 1 {
			return nil, fmt.Errorf("fhirpath: %s with %d items", x.op, len(item))
		}
		for _, n := range coll {
			if equal(item[0].Value, n.Value) {
				return boolean(true), nil
			}
		}
		return boolean(false), nil
	}
	return nil, fmt.Errorf("fhirpath: operator %s", x.op)
}

var (
	trueNodes  = []Node{{Value: true, Type: "boolean"}}
	falseNodes = []Node{{Value: false, Type: "boolean"}}
)

// boolean returns a shared singleton: callers never modify a result in
// place.
func boolean(b bool) []Node {
	if b {
		return trueNodes
	}
	return falseNodes
}

// truth converts a collection to a boolean (fhirpath.html#boolean-evaluation-of-collections):
// empty is unknown, a single boolean is itself, and – the lenient reading –
// any other non-empty collection is true.
func truth(ns []Node) (value, known bool) {
	if len(ns) == 0 {
		return false, false
	}
	if len(ns) == 1 {
		if b, ok := ns[0].Value.(bool); ok {
			return b, true
		}
	}
	return true, true
}

// integer reads a single integer item.
func integer(ns []Node) (int, bool) {
	if len(ns) != 1 {
		return 0, false
	}
	n, ok := ns[0].Value.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(string(n))
	return i, err == nil
}

// equal is FHIRPath `=` on two JSON values: numbers by value, objects and
// arrays member by member.
func equal(a, b any) bool {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		c, ok := compareNumbers(x, y)
		return ok && c == 0
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return false
}

// equivalent is FHIRPath `~`: strings ignore case and collapse
// whitespace.
func equivalent(a, b any) bool {
	x, ok1 := a.(string)
	y, ok2 := b.(string)
	if ok1 && ok2 {
		return strings.EqualFold(strings.Join(strings.Fields(x), " "), strings.Join(strings.Fields(y), " "))
	}
	return equal(a, b)
}

// compare orders two numbers or two strings.
func compare(a, b any) (int, bool) {
	switch x := a.(type) {
	case json.Number:
		if y, ok := b.(json.Number); ok {
			return compareNumbers(x, y)
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), true
		}
	}
	return 0, false
}

func compareNumbers(a, b json.Number) (int, bool) {
	x, ok1 := new(big.Rat).SetString(string(a))
	y, ok2 := new(big.Rat).SetString(string(b))
	if !ok1 || !ok2 {
		return 0, false
	}
	return x.Cmp(y), true
}

// same reports whether two nodes are the same item, for `|` and
// distinct(): objects by identity (the same element of the resource),
// primitives by value.
func same(a, b Node) bool {
	if ma, ok := a.Value.(map[string]any); ok {
		mb, ok := b.Value.(map[string]any)
		return ok && reflect.ValueOf(ma).UnsafePointer() == reflect.ValueOf(mb).UnsafePointer()
	}
	if a.Value == nil || b.Value == nil {
		return a.Value == nil && b.Value == nil && a.Type == b.Type &&
			reflect.ValueOf(a.ext).UnsafePointer() == reflect.ValueOf(b.ext).UnsafePointer()
	}
	return equal(a.Value, b.Value)
}

// distinct removes repeated items, keeping the first of each. It copies
// only when there is something to remove: results may share literals.
// Many items (a Group's members) go through a map, not pairs.
func distinct(ns []Node) []Node {
	if len(ns) > 32 {
		return distinctMany(ns)
	}
	for i := 1; i < len(ns); i++ {
		for j := 0; j < i; j++ {
			if same(ns[i], ns[j]) {
				out := append(make([]Node, 0, len(ns)), ns[:i]...)
			outer:
				for _, n := range ns[i+1:] {
					for _, m := range out {
						if same(n, m) {
							continue outer
						}
					}
					out = append(out, n)
				}
				return out
			}
		}
	}
	return ns
}

// nodeKey identifies a node as same does, except that numbers compare as
// written ("1.0" and "1" stay two).
type nodeKey struct {
	ptr  unsafe.Pointer // an object's identity, or a bare primitive's companion
	kind byte
	s    string
}

func distinctMany(ns []Node) []Node {
	seen := make(map[nodeKey]bool, len(ns))
	out := make([]Node, 0, len(ns))
	for _, n := range ns {
		var k nodeKey
		switch v := n.Value.(type) {
		case map[string]any:
			k = nodeKey{ptr: reflect.ValueOf(v).UnsafePointer(), kind: 'm'}
		case string:
			k = nodeKey{kind: 's', s: v}
		case json.Number:
			k = nodeKey{kind: 'n', s: string(v)}
		case bool:
			k = nodeKey{kind: 'b', s: strconv.FormatBool(v)}
		case nil:
			k = nodeKey{ptr: reflect.ValueOf(n.ext).UnsafePointer(), kind: '0', s: n.Type}
		default:
			out = append(out, n) // not a JSON value: keep
			continue
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, n)
		}
	}
	return out
}

func ofType(ns []Node, typ string) []Node {
	var out []Node
	for _, n := range ns {
		if n.is(typ) {
			out = append(out, n)
		}
	}
	return out
}
