package fhirpath

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

type function struct {
	minArgs, maxArgs int
	// typeArg: the argument is a type specifier (ofType, as, is).
	typeArg bool
	impl    func(c *ctx, in []Node, x *call) ([]Node, error)
}

var functions map[string]*function

func init() {
	functions = map[string]*function{
		"empty": {impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			return boolean(len(in) == 0), nil
		}},
		"exists": {maxArgs: 1, impl: func(c *ctx, in []Node, x *call) ([]Node, error) {
			if len(x.args) == 0 {
				return boolean(len(in) > 0), nil
			}
			found := false
			err := each(c, in, x.args[0], func(_ Node, v bool) bool { found = v; return !v })
			return boolean(found), err
		}},
		"not": {impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			v, ok := truth(in)
			if !ok {
				return nil, nil
			}
			return boolean(!v), nil
		}},
		"where": {minArgs: 1, maxArgs: 1, impl: func(c *ctx, in []Node, x *call) ([]Node, error) {
			var out []Node
			err := each(c, in, x.args[0], func(n Node, v bool) bool {
				if v {
					out = append(out, n)
				}
				return true
			})
			return out, err
		}},
		"select": {minArgs: 1, maxArgs: 1, impl: func(c *ctx, in []Node, x *call) ([]Node, error) {
			var out []Node
			err := perItem(c, in, func(n Node) error {
				r, err := x.args[0].eval(c, c.this)
				out = append(out, r...)
				return err
			})
			return out, err
		}},
		"all": {minArgs: 1, maxArgs: 1, impl: func(c *ctx, in []Node, x *call) ([]Node, error) {
			all := true
			err := each(c, in, x.args[0], func(_ Node, v bool) bool { all = v; return v })
			return boolean(all), err
		}},
		"allTrue":  {impl: allAny(true, true)},
		"anyTrue":  {impl: allAny(false, true)},
		"allFalse": {impl: allAny(true, false)},
		"anyFalse": {impl: allAny(false, false)},
		"first": {impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			if len(in) == 0 {
				return nil, nil
			}
			return in[:1], nil
		}},
		"last": {impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			if len(in) == 0 {
				return nil, nil
			}
			return in[len(in)-1:], nil
		}},
		"tail": {impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			if len(in) < 2 {
				return nil, nil
			}
			return in[1:], nil
		}},
		"skip": {minArgs: 1, maxArgs: 1, impl: func(c *ctx, in []Node, x *call) ([]Node, error) {
			n, err := intArg(c, x)
			if err != nil || n >= len(in) {
				return nil, err
			}
			return in[max(n, 0):], nil
		}},
		"take": {minArgs: 1, maxArgs: 1, impl: func(c *ctx, in []Node, x *call) ([]Node, error) {
			n, err := intArg(c, x)
			if err != nil || n <= 0 {
				return nil, err
			}
			return in[:min(n, len(in))], nil
		}},
		"single": {impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			if len(in) > 1 {
				return nil, fmt.Errorf("fhirpath: single() on %d items", len(in))
			}
			return in, nil
		}},
		"count": {impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			return []Node{{Value: json.Number(strconv.Itoa(len(in))), Type: "integer"}}, nil
		}},
		"distinct": {impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			return distinct(in), nil
		}},
		"union": {minArgs: 1, maxArgs: 1, impl: func(c *ctx, in []Node, x *call) ([]Node, error) {
			other, err := x.args[0].eval(c, c.this)
			return distinct(append(append([]Node(nil), in...), other...)), err
		}},
		"combine": {minArgs: 1, maxArgs: 1, impl: func(c *ctx, in []Node, x *call) ([]Node, error) {
			other, err := x.args[0].eval(c, c.this)
			return append(append([]Node(nil), in...), other...), err
		}},
		"ofType": {typeArg: true, impl: func(_ *ctx, in []Node, x *call) ([]Node, error) {
			return ofType(in, x.typ), nil
		}},
		// as() filters like ofType: see the package comment.
		"as": {typeArg: true, impl: func(_ *ctx, in []Node, x *call) ([]Node, error) {
			return ofType(in, x.typ), nil
		}},
		"is": {typeArg: true, impl: func(_ *ctx, in []Node, x *call) ([]Node, error) {
			if len(in) == 0 {
				return nil, nil
			}
			if len(in) > 1 {
				return nil, fmt.Errorf("fhirpath: is() on %d items", len(in))
			}
			return boolean(in[0].is(x.typ)), nil
		}},
		"resolve":   {impl: resolve},
		"extension": {minArgs: 1, maxArgs: 1, impl: extension},
		"hasValue": {impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			if len(in) != 1 {
				return boolean(false), nil
			}
			switch in[0].Value.(type) {
			case string, bool, json.Number:
				return boolean(true), nil
			}
			return boolean(false), nil
		}},
		"iif": {minArgs: 2, maxArgs: 3, impl: func(c *ctx, in []Node, x *call) ([]Node, error) {
			saved := c.this
			defer func() { c.this = saved }()
			c.this = in
			cond, err := x.args[0].eval(c, in)
			if err != nil {
				return nil, err
			}
			if v, ok := truth(cond); ok && v {
				return x.args[1].eval(c, in)
			}
			if len(x.args) == 3 {
				return x.args[2].eval(c, in)
			}
			return nil, nil
		}},
		"startsWith": {minArgs: 1, maxArgs: 1, impl: stringTest(strings.HasPrefix)},
		"endsWith":   {minArgs: 1, maxArgs: 1, impl: stringTest(strings.HasSuffix)},
		"contains":   {minArgs: 1, maxArgs: 1, impl: stringTest(strings.Contains)},
		"lower":      {impl: stringMap(func(s string) Node { return Node{Value: strings.ToLower(s), Type: "string"} })},
		"upper":      {impl: stringMap(func(s string) Node { return Node{Value: strings.ToUpper(s), Type: "string"} })},
		"length": {impl: stringMap(func(s string) Node {
			return Node{Value: json.Number(strconv.Itoa(utf8.RuneCountInString(s))), Type: "integer"}
		})},
		"children": {impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			var out []Node
			for _, n := range in {
				out = children(out, n)
			}
			return out, nil
		}},
		"descendants": {impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			var out []Node
			for _, n := range in {
				out = children(out, n)
			}
			// out grows while it is walked: each node's children are
			// appended after it, breadth first.
			for i := 0; i < len(out); i++ {
				out = children(out, out[i])
			}
			return out, nil
		}},
		"trace": {minArgs: 1, maxArgs: 2, impl: func(_ *ctx, in []Node, _ *call) ([]Node, error) {
			return in, nil
		}},
	}
}

// perItem calls f for each input item with $this and $index set to it.
func perItem(c *ctx, in []Node, f func(Node) error) error {
	saved, savedIndex := c.this, c.index
	defer func() { c.this, c.index = saved, savedIndex }()
	for i, n := range in {
		c.this, c.index = []Node{n}, i
		if err := f(n); err != nil {
			return err
		}
	}
	return nil
}

var errStop = errors.New("stop")

// each evaluates a criterion on each input item; f returns false to stop.
func each(c *ctx, in []Node, crit expr, f func(n Node, v bool) bool) error {
	err := perItem(c, in, func(n Node) error {
		r, err := crit.eval(c, c.this)
		if err != nil {
			return err
		}
		v, ok := truth(r)
		if !f(n, ok && v) {
			return errStop
		}
		return nil
	})
	if err == errStop {
		return nil
	}
	return err
}

func allAny(all, want bool) func(*ctx, []Node, *call) ([]Node, error) {
	return func(_ *ctx, in []Node, _ *call) ([]Node, error) {
		for _, n := range in {
			b, ok := n.Value.(bool)
			if all && (!ok || b != want) {
				return boolean(false), nil
			}
			if !all && ok && b == want {
				return boolean(true), nil
			}
		}
		return boolean(all), nil
	}
}

func intArg(c *ctx, x *call) (int, error) {
	v, err := x.args[0].eval(c, c.this)
	if err != nil {
		return 0, err
	}
	n, ok := integer(v)
	if !ok {
		return 0, fmt.Errorf("fhirpath: argument is not an integer")
	}
	return n, nil
}

// stringArg evaluates a function's argument to a single string.
func stringArg(c *ctx, x *call) (string, bool, error) {
	v, err := x.args[0].eval(c, c.this)
	if err != nil || len(v) != 1 {
		return "", false, err
	}
	s, ok := v[0].Value.(string)
	return s, ok, nil
}

// single reads the one string item a string function applies to.
func single(in []Node) (string, bool, error) {
	switch len(in) {
	case 0:
		return "", false, nil
	case 1:
		s, ok := in[0].Value.(string)
		return s, ok, nil
	}
	return "", false, fmt.Errorf("fhirpath: string function on %d items", len(in))
}

func stringTest(test func(s, sub string) bool) func(*ctx, []Node, *call) ([]Node, error) {
	return func(c *ctx, in []Node, x *call) ([]Node, error) {
		s, ok, err := single(in)
		if err != nil || !ok {
			return nil, err
		}
		arg, ok, err := stringArg(c, x)
		if err != nil || !ok {
			return nil, err
		}
		return boolean(test(s, arg)), nil
	}
}

func stringMap(f func(string) Node) func(*ctx, []Node, *call) ([]Node, error) {
	return func(_ *ctx, in []Node, _ *call) ([]Node, error) {
		s, ok, err := single(in)
		if err != nil || !ok {
			return nil, err
		}
		return []Node{f(s)}, nil
	}
}

// children appends the child elements of n, in property order.
func children(out []Node, n Node) []Node {
	obj, ok := n.Value.(map[string]any)
	if !ok {
		if n.ext != nil {
			out = appendValue(out, n.ext["extension"], nil, "")
		}
		return out
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		if k != "resourceType" && !strings.HasPrefix(k, "_") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = appendValue(out, obj[k], companion(obj, "_"+k, obj[k]), "")
	}
	return out
}

// extension is extension(url): the extensions of each item with that url,
// a primitive's included.
func extension(c *ctx, in []Node, x *call) ([]Node, error) {
	url, ok, err := stringArg(c, x)
	if err != nil || !ok {
		return nil, err
	}
	var out []Node
	for _, n := range in {
		holder, ok := n.Value.(map[string]any)
		if !ok {
			holder = n.ext
		}
		exts, _ := holder["extension"].([]any)
		for _, e := range exts {
			if em, ok := e.(map[string]any); ok && em["url"] == url {
				out = append(out, Node{Value: em, Type: "Extension"})
			}
		}
	}
	return out, nil
}

// resolve reads the target of each reference. Kiln resolves without
// reading other resources: a contained reference ("#id") yields the
// contained resource, any other yields a node that carries only the type
// (Reference.type, or the type in the reference:
// "Patient/123" and "http://x/fhir/Patient/123" are a Patient), which is
// what search expressions ask of it (`resolve() is Patient`). A reference
// whose type cannot be known (urn:uuid:…, identifier only) resolves to
// nothing.
func resolve(c *ctx, in []Node, _ *call) ([]Node, error) {
	var out []Node
	for _, n := range in {
		var ref, typ string
		switch v := n.Value.(type) {
		case map[string]any:
			ref, _ = v["reference"].(string)
			typ, _ = v["type"].(string)
		case string: // canonical, uri
			ref = v
		default:
			continue
		}
		if id, ok := strings.CutPrefix(ref, "#"); ok {
			if id == "" {
				out = append(out, c.root)
				continue
			}
			if root, ok := c.root.Value.(map[string]any); ok {
				contained, _ := root["contained"].([]any)
				for _, r := range contained {
					if rm, ok := r.(map[string]any); ok && rm["id"] == id {
						out = append(out, newNode(rm, nil, ""))
						break
					}
				}
			}
			continue
		}
		if typ != "" {
			// Reference.type is a uri: absolute URLs are relative to
			// http://hl7.org/fhir/StructureDefinition/.
			if i := strings.LastIndexByte(typ, '/'); i >= 0 {
				typ = typ[i+1:]
			}
		} else {
			typ = ReferenceType(ref)
		}
		if typ != "" {
			out = append(out, Node{Type: typ})
		}
	}
	return out, nil
}

// ReferenceType returns the resource type a literal reference names:
// "Patient" for "Patient/123", "Patient/123/_history/2",
// "https://example.org/fhir/Patient/123" and canonical
// "http://example.org/fhir/ValueSet/x|1.0"; "" when it names none
// ("urn:uuid:…", "#contained", "").
func ReferenceType(ref string) string {
	if i := strings.IndexByte(ref, '|'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	i := strings.LastIndexByte(ref, '/')
	if i <= 0 || i == len(ref)-1 {
		return ""
	}
	typ := ref[:i]
	if j := strings.LastIndexByte(typ, '/'); j >= 0 {
		typ = typ[j+1:]
	}
	if typ == "" || typ[0] < 'A' || typ[0] > 'Z' {
		return ""
	}
	for k := 1; k < len(typ); k++ {
		if c := typ[k]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return ""
		}
	}
	return typ
}
