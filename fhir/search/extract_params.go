package search

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// ExtractParams is ExtractBase for some parameters of typ only, in the
// order named (unknown names give nothing). Access control reads a few
// parameters of every resource it serves (the compartment's references,
// a granular scope's category); evaluating all of them would cost a
// read several times over.
func (r *Registry) ExtractParams(typ string, body []byte, base string, names []string) ([]Entry, error) {
	tp := r.types[typ]
	if tp == nil {
		return nil, fmt.Errorf("search: extract: unknown resource type %q", typ)
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var res map[string]any
	if err := d.Decode(&res); err != nil {
		return nil, fmt.Errorf("search: extract %s: %w", typ, err)
	}
	if rt, _ := res["resourceType"].(string); rt != typ {
		return nil, fmt.Errorf("search: extract %s: resourceType is %q", typ, rt)
	}
	bases := r.bases
	if b := strings.TrimRight(base, "/"); b != "" {
		bases = append(slices.Clip(bases), b+"/")
	}
	x := extractor{loc: r.loc, bases: bases, res: res}
	var out []Entry
	for i, name := range names {
		p := tp.byName[name]
		if p == nil || slices.Contains(names[:i], name) {
			continue
		}
		start := len(out)
		if p.narrative {
			out = x.narrative(out, p)
			continue
		}
		nodes, err := p.expr.Evaluate(res)
		if err != nil {
			return nil, fmt.Errorf("search: extract %s.%s: %w", typ, p.Name, err)
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
