package rest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// jsonPatch is an RFC 6902 JSON Patch: operations applied in order, the
// whole patch failing if one does (RFC 6902 §5).
type jsonPatch []jsonPatchOp

type jsonPatchOp struct {
	Op    string
	Path  []string // RFC 6901 pointer, unescaped tokens
	From  []string
	Value any
}

func parseJSONPatch(body []byte) (patchDoc, error) {
	var raw []struct {
		Op    string          `json:"op"`
		Path  *string         `json:"path"`
		From  *string         `json:"from"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure, "a JSON Patch is an array of operations (RFC 6902): "+err.Error())
	}
	p := make(jsonPatch, 0, len(raw))
	for i, r := range raw {
		bad := func(msg string) error {
			return outcome.Newf(http.StatusBadRequest, outcome.CodeInvalid, "JSON Patch operation %d: %s", i, msg)
		}
		op := jsonPatchOp{Op: r.Op}
		if r.Path == nil {
			return nil, bad("path is required")
		}
		var err error
		if op.Path, err = pointer(*r.Path); err != nil {
			return nil, bad(err.Error())
		}
		switch r.Op {
		case "add", "replace", "test":
			if r.Value == nil {
				return nil, bad(r.Op + " needs a value")
			}
			dec := json.NewDecoder(bytes.NewReader(r.Value))
			dec.UseNumber()
			if err := dec.Decode(&op.Value); err != nil {
				return nil, bad("value is not JSON")
			}
		case "remove":
		case "move", "copy":
			if r.From == nil {
				return nil, bad(r.Op + " needs from")
			}
			if op.From, err = pointer(*r.From); err != nil {
				return nil, bad(err.Error())
			}
		default:
			return nil, bad("op must be add, remove, replace, move, copy or test")
		}
		p = append(p, op)
	}
	return p, nil
}

// pointer splits an RFC 6901 JSON Pointer into unescaped tokens.
func pointer(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if !strings.HasPrefix(s, "/") {
		return nil, errString("a JSON Pointer starts with /")
	}
	toks := strings.Split(s[1:], "/")
	for i, t := range toks {
		toks[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return toks, nil
}

type errString string

func (e errString) Error() string { return string(e) }

func (p jsonPatch) apply(res map[string]any) (map[string]any, error) {
	var doc any = res
	for i, op := range p {
		var err error
		switch op.Op {
		case "add":
			doc, err = ptrAdd(doc, op.Path, op.Value)
		case "remove":
			doc, _, err = ptrRemove(doc, op.Path)
		case "replace":
			if _, err = ptrGet(doc, op.Path); err == nil {
				doc, _, err = ptrRemove(doc, op.Path)
			}
			if err == nil {
				doc, err = ptrAdd(doc, op.Path, op.Value)
			}
		case "move":
			if isPrefix(op.From, op.Path) && len(op.From) < len(op.Path) {
				err = errString("a value cannot be moved into itself")
				break
			}
			var v any
			if doc, v, err = ptrRemove(doc, op.From); err == nil {
				doc, err = ptrAdd(doc, op.Path, v)
			}
		case "copy":
			var v any
			if v, err = ptrGet(doc, op.From); err == nil {
				doc, err = ptrAdd(doc, op.Path, deepCopy(v))
			}
		case "test":
			var v any
			if v, err = ptrGet(doc, op.Path); err == nil && !jsonEqual(v, op.Value) {
				err = errString("test failed: the value differs")
			}
		}
		if err != nil {
			return nil, unprocessable("JSON Patch operation %d (%s /%s): %v", i, op.Op, strings.Join(op.Path, "/"), err)
		}
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, unprocessable("the JSON Patch leaves no resource")
	}
	return m, nil
}

func isPrefix(a, b []string) bool {
	if len(a) > len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func ptrGet(doc any, path []string) (any, error) {
	for _, tok := range path {
		switch n := doc.(type) {
		case map[string]any:
			v, ok := n[tok]
			if !ok {
				return nil, errString("no member " + tok)
			}
			doc = v
		case []any:
			i, err := arrayIndex(tok, len(n)-1)
			if err != nil {
				return nil, err
			}
			doc = n[i]
		default:
			return nil, errString("path goes through a primitive")
		}
	}
	return doc, nil
}

// arrayIndex parses an array token, which must be in [0, max].
func arrayIndex(tok string, max int) (int, error) {
	i, err := strconv.Atoi(tok)
	if err != nil || i < 0 || (len(tok) > 1 && tok[0] == '0') {
		return 0, errString("bad array index " + tok)
	}
	if i > max {
		return 0, errString("array index " + tok + " out of range")
	}
	return i, nil
}

// ptrEdit applies f to the container of the path's last token and stores
// what f returns in the container's parent.
func ptrEdit(doc any, path []string, f func(container any, tok string) (any, error)) (any, error) {
	if len(path) == 1 {
		return f(doc, path[0])
	}
	child, err := ptrGet(doc, path[:1])
	if err != nil {
		return nil, err
	}
	child, err = ptrEdit(child, path[1:], f)
	if err != nil {
		return nil, err
	}
	switch n := doc.(type) {
	case map[string]any:
		n[path[0]] = child
	case []any:
		i, _ := strconv.Atoi(path[0])
		n[i] = child
	}
	return doc, nil
}

func ptrAdd(doc any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	return ptrEdit(doc, path, func(c any, tok string) (any, error) {
		switch n := c.(type) {
		case map[string]any:
			n[tok] = v
			return n, nil
		case []any:
			if tok == "-" {
				return append(n, v), nil
			}
			i, err := arrayIndex(tok, len(n))
			if err != nil {
				return nil, err
			}
			return append(n[:i], append([]any{v}, n[i:]...)...), nil
		}
		return nil, errString("cannot add to a primitive")
	})
}

func ptrRemove(doc any, path []string) (any, any, error) {
	if len(path) == 0 {
		return nil, nil, errString("cannot remove the whole resource")
	}
	var removed any
	doc, err := ptrEdit(doc, path, func(c any, tok string) (any, error) {
		switch n := c.(type) {
		case map[string]any:
			v, ok := n[tok]
			if !ok {
				return nil, errString("no member " + tok)
			}
			removed = v
			delete(n, tok)
			return n, nil
		case []any:
			i, err := arrayIndex(tok, len(n)-1)
			if err != nil {
				return nil, err
			}
			removed = n[i]
			return append(n[:i:i], n[i+1:]...), nil
		}
		return nil, errString("cannot remove from a primitive")
	})
	return doc, removed, err
}

func deepCopy(v any) any {
	b, _ := json.Marshal(v)
	var out any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.Decode(&out)
	return out
}

// jsonEqual compares JSON values (RFC 6902 §4.6): numbers by value.
func jsonEqual(a, b any) bool {
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok && bok {
		x, err1 := an.Float64()
		y, err2 := bn.Float64()
		return err1 == nil && err2 == nil && x == y
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !jsonEqual(v, w) {
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
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
