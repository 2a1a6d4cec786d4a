package rest

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/kiln-fhir/kiln/conformance/defs"
	"github.com/kiln-fhir/kiln/fhir/fhirpath"
	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// fhirPathPatch is a FHIRPath Patch (fhirpatch.html): a Parameters
// resource with one "operation" parameter per operation, applied in order.
// Paths are evaluated with fhir/fhirpath over the decoded resource; the
// nodes it returns are the resource's own maps, so the element a path
// selects is found by identity.
type fhirPathPatch []fhirPathOp

type fhirPathOp struct {
	Type        string // add, insert, delete, replace, move
	Path        *fhirpath.Expression
	Name        string
	Value       any
	HasValue    bool
	Index       int
	Source      int
	Destination int
}

func parseFHIRPathPatch(body []byte) (patchDoc, error) {
	params, err := decodeObject(body)
	if err != nil {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure, "the body is not a JSON resource")
	}
	if params["resourceType"] != "Parameters" {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeInvalid,
			"a FHIRPath Patch is a Parameters resource (fhirpatch.html)", "resourceType")
	}
	list, _ := params["parameter"].([]any)
	var p fhirPathPatch
	for i, pv := range list {
		where := "Parameters.parameter[" + strconv.Itoa(i) + "]"
		bad := func(msg string) error {
			return outcome.New(http.StatusBadRequest, outcome.CodeInvalid, msg, where)
		}
		param, _ := pv.(map[string]any)
		if param["name"] != "operation" {
			return nil, bad("every parameter of a FHIRPath Patch is named operation")
		}
		op := fhirPathOp{Index: -1, Source: -1, Destination: -1}
		parts, _ := param["part"].([]any)
		for _, partv := range parts {
			part, _ := partv.(map[string]any)
			name, _ := part["name"].(string)
			val, has := partValue(part)
			switch name {
			case "type":
				op.Type, _ = val.(string)
			case "path":
				src, _ := val.(string)
				if op.Path, err = fhirpath.Compile(src); err != nil {
					return nil, bad("path: " + err.Error())
				}
			case "name":
				op.Name, _ = val.(string)
			case "value":
				op.Value, op.HasValue = val, has
			case "index", "source", "destination":
				n, ok := val.(json.Number)
				k, err := n.Int64()
				if !ok || err != nil || k < 0 {
					return nil, bad(name + " must be a non-negative integer")
				}
				switch name {
				case "index":
					op.Index = int(k)
				case "source":
					op.Source = int(k)
				default:
					op.Destination = int(k)
				}
			default:
				return nil, bad("unknown operation part " + name)
			}
		}
		if op.Path == nil {
			return nil, bad("an operation needs a path")
		}
		missing := ""
		switch op.Type {
		case "add":
			if op.Name == "" || !op.HasValue {
				missing = "name and value"
			}
		case "insert":
			if !op.HasValue || op.Index < 0 {
				missing = "value and index"
			}
		case "replace":
			if !op.HasValue {
				missing = "value"
			}
		case "move":
			if op.Source < 0 || op.Destination < 0 {
				missing = "source and destination"
			}
		case "delete":
		default:
			return nil, bad("operation type must be add, insert, delete, replace or move")
		}
		if missing != "" {
			return nil, bad("a " + op.Type + " operation needs " + missing)
		}
		p = append(p, op)
	}
	if len(p) == 0 {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeRequired, "the FHIRPath Patch has no operation")
	}
	return p, nil
}

// partValue is a part's value[x], or the object its own parts make (an
// anonymous complex value: fhirpatch.html#parameters).
func partValue(part map[string]any) (any, bool) {
	for k, v := range part {
		if strings.HasPrefix(k, "value") && len(k) > 5 {
			return v, true
		}
	}
	sub, ok := part["part"].([]any)
	if !ok || part["name"] != "value" {
		return nil, false
	}
	obj := map[string]any{}
	for _, sv := range sub {
		s, _ := sv.(map[string]any)
		name, _ := s["name"].(string)
		if v, ok := partValue(s); ok && name != "" {
			obj[name] = v
		}
	}
	return obj, true
}

func (p fhirPathPatch) apply(res map[string]any) (map[string]any, error) {
	for i, op := range p {
		if err := op.apply(res); err != nil {
			return nil, unprocessable("FHIRPath Patch operation %d (%s %s): %v", i, op.Type, op.Path, err)
		}
	}
	return res, nil
}

// slot is where an element lives: property name of obj, and its position
// when the property is a list (-1: the property as a whole).
type slot struct {
	obj   map[string]any
	name  string
	index int
}

func (s slot) get() any {
	v := s.obj[s.name]
	if s.index >= 0 {
		return v.([]any)[s.index]
	}
	return v
}

func (op fhirPathOp) apply(res map[string]any) error {
	switch op.Type {
	case "add":
		obj, err := op.container(res)
		if err != nil {
			return err
		}
		switch cur := obj[op.Name].(type) {
		case nil:
			if repeats(res, obj, op.Name) {
				obj[op.Name] = []any{op.Value}
			} else {
				obj[op.Name] = op.Value
			}
		case []any:
			obj[op.Name] = append(cur, op.Value)
		default:
			return errString(op.Name + " already has a value (use replace)")
		}
	case "insert", "move":
		s, err := op.list(res)
		if err != nil {
			return err
		}
		list := s.obj[s.name].([]any)
		if op.Type == "insert" {
			if op.Index > len(list) {
				return errString("index beyond the end of the list")
			}
			s.obj[s.name] = append(list[:op.Index:op.Index], append([]any{op.Value}, list[op.Index:]...)...)
			return nil
		}
		if op.Source >= len(list) || op.Destination >= len(list) {
			return errString("source or destination beyond the end of the list")
		}
		v := list[op.Source]
		list = append(list[:op.Source:op.Source], list[op.Source+1:]...)
		s.obj[s.name] = append(list[:op.Destination:op.Destination], append([]any{v}, list[op.Destination:]...)...)
	case "delete", "replace":
		slots, err := op.locate(res)
		if err != nil {
			return err
		}
		if len(slots) > 1 {
			return errString("the path matches several elements; it must match one")
		}
		if len(slots) == 0 {
			if op.Type == "delete" {
				return nil // fhirpatch.html: deleting nothing is not an error
			}
			return errString("the path matches no element")
		}
		s := slots[0]
		if op.Type == "replace" {
			if s.index >= 0 {
				s.obj[s.name].([]any)[s.index] = op.Value
			} else {
				s.obj[s.name] = op.Value
			}
			return nil
		}
		if s.index < 0 {
			delete(s.obj, s.name)
			return nil
		}
		list := s.obj[s.name].([]any)
		list = append(list[:s.index:s.index], list[s.index+1:]...)
		if len(list) == 0 {
			delete(s.obj, s.name)
		} else {
			s.obj[s.name] = list
		}
	}
	return nil
}

// container is the one object the path selects (add).
func (op fhirPathOp) container(res map[string]any) (map[string]any, error) {
	nodes, err := op.Path.Evaluate(res)
	if err != nil {
		return nil, err
	}
	if len(nodes) != 1 {
		return nil, errString("the path must select exactly one element, it selects " + strconv.Itoa(len(nodes)))
	}
	obj, ok := nodes[0].Value.(map[string]any)
	if !ok {
		return nil, errString("the path selects a primitive; add needs an element that has children")
	}
	return obj, nil
}

// list is the list the path names (insert, move): the path ends in a
// property that holds a list.
func (op fhirPathOp) list(res map[string]any) (slot, error) {
	prefix, name, idx, ok := lastStep(op.Path.String())
	if !ok || idx >= 0 {
		return slot{}, errString("the path must end in the name of a repeating element")
	}
	parent, err := fhirpath.Compile(prefix)
	if err != nil {
		return slot{}, err
	}
	nodes, err := parent.Evaluate(res)
	if err != nil {
		return slot{}, err
	}
	if len(nodes) != 1 {
		return slot{}, errString("the path must select exactly one list")
	}
	obj, ok := nodes[0].Value.(map[string]any)
	if !ok {
		return slot{}, errString("the path does not select a list")
	}
	if _, ok := obj[name].([]any); !ok {
		if _, set := obj[name]; set || op.Type == "move" || !repeats(res, obj, name) {
			return slot{}, errString(name + " is not a list")
		}
		obj[name] = []any{}
	}
	return slot{obj: obj, name: name, index: -1}, nil
}

// locate finds the elements the path selects (delete, replace). Objects
// are found by identity in the resource; primitives through the path's
// last step (…​.name or …​.name[n]).
func (op fhirPathOp) locate(res map[string]any) ([]slot, error) {
	nodes, err := op.Path.Evaluate(res)
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		return nil, nil
	}
	var out []slot
	for _, n := range nodes {
		obj, ok := n.Value.(map[string]any)
		if !ok {
			break
		}
		s, found := findObject(res, obj)
		if !found {
			return nil, errString("the element the path selects cannot be changed")
		}
		out = append(out, s)
	}
	if len(out) == len(nodes) {
		return out, nil
	}
	prefix, name, idx, ok := lastStep(op.Path.String())
	if !ok {
		return nil, errString("a path to a primitive must end in .name or .name[n]")
	}
	parent, err := fhirpath.Compile(prefix)
	if err != nil {
		return nil, err
	}
	parents, err := parent.Evaluate(res)
	if err != nil {
		return nil, err
	}
	out = nil
	for _, p := range parents {
		obj, ok := p.Value.(map[string]any)
		if !ok {
			continue
		}
		v, set := obj[name]
		if !set {
			continue
		}
		list, isList := v.([]any)
		switch {
		case idx >= 0 && isList && idx < len(list):
			out = append(out, slot{obj, name, idx})
		case idx < 0 && isList && len(list) == 1:
			out = append(out, slot{obj, name, 0})
		case idx < 0 && isList:
			for k := range list {
				out = append(out, slot{obj, name, k})
			}
		case idx <= 0 && !isList:
			out = append(out, slot{obj, name, -1})
		}
	}
	return out, nil
}

var lastStepRE = regexp.MustCompile(`^(.+)\.([A-Za-z][A-Za-z0-9_]*)(?:\[(\d+)\])?$`)

// lastStep splits "Patient.name[0].given[1]" into "Patient.name[0]",
// "given" and 1 (-1 without an indexer).
func lastStep(path string) (prefix, name string, index int, ok bool) {
	m := lastStepRE.FindStringSubmatch(strings.TrimSpace(path))
	if m == nil {
		return "", "", 0, false
	}
	index = -1
	if m[3] != "" {
		index, _ = strconv.Atoi(m[3])
	}
	return m[1], m[2], index, true
}

// findObject finds where obj sits inside v, by identity.
func findObject(v any, obj map[string]any) (slot, bool) {
	target := reflect.ValueOf(obj).UnsafePointer()
	var find func(v any) (slot, bool)
	find = func(v any) (slot, bool) {
		m, ok := v.(map[string]any)
		if !ok {
			return slot{}, false
		}
		for k, x := range m {
			switch x := x.(type) {
			case map[string]any:
				if reflect.ValueOf(x).UnsafePointer() == target {
					return slot{m, k, -1}, true
				}
				if s, ok := find(x); ok {
					return s, true
				}
			case []any:
				for i, y := range x {
					if ym, ok := y.(map[string]any); ok && reflect.ValueOf(ym).UnsafePointer() == target {
						return slot{m, k, i}, true
					}
					if s, ok := find(y); ok {
						return s, true
					}
				}
			}
		}
		return slot{}, false
	}
	return find(v)
}

// repeatingData are the repeating elements of the common data types
// (datatypes.html), for adds below the resource's own elements, which
// elements.json does not describe.
var repeatingData = map[string]bool{
	"extension": true, "modifierExtension": true, "coding": true, "given": true, "prefix": true,
	"suffix": true, "line": true, "telecom": true, "identifier": true, "contained": true,
	"profile": true, "security": true, "tag": true, "note": true, "address": true, "name": true,
	"contact": true, "communication": true, "link": true, "component": true, "referenceRange": true,
}

// repeats reports whether property name of obj is a list (max "*").
func repeats(res, obj map[string]any, name string) bool {
	if reflect.ValueOf(res).UnsafePointer() == reflect.ValueOf(obj).UnsafePointer() {
		typ, _ := res["resourceType"].(string)
		if d := defs.Lookup(typ); d != nil {
			if el, ok := d.Element(name); ok {
				return el.Max != "1"
			}
		}
	}
	return repeatingData[name]
}
