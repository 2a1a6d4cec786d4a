package search

import (
	"fmt"
	"slices"
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
	res, err := decodeObject(typ, body)
	if err != nil {
		return nil, err
	}
	var params []*Param
	for i, name := range names {
		if p := tp.byName[name]; p != nil && !slices.Contains(names[:i], name) {
			params = append(params, p)
		}
	}
	return r.extract(typ, res, base, params)
}
