package terminology

import (
	"context"
	"slices"

	"github.com/kiln-fhir/kiln/fhir/search"
)

// Resolve returns q with each token clause modified by :in, :not-in,
// :above or :below (search.html#token), at any depth (chains, _has, and
// the server's own Any and All), rewritten into the plain clause a backend
// answers:
//
//	code:in=[ValueSet]        code=s1|c1,s1|c2,s2|        (the expansion)
//	code:not-in=[ValueSet]    code:not=s1|c1,s1|c2,s2|
//	code:below=[system]|[c]   code=system|c,system|child,…
//	code:above=[system]|[c]   code=system|c,system|parent,…
//
// An empty expansion matches nothing (:not-in: everything). q is returned
// as is when it has no such clause, so an ordinary search pays nothing;
// otherwise a copy is returned and q is not changed.
func Resolve(ctx context.Context, src Source, q *search.Query) (*search.Query, error) {
	if !slices.ContainsFunc(q.Filter, needs) {
		return q, nil
	}
	e := newExpander(src)
	out := *q
	out.Filter = make([]search.Clause, len(q.Filter))
	for i := range q.Filter {
		c, err := e.clause(ctx, q.Filter[i])
		if err != nil {
			return nil, err
		}
		out.Filter[i] = c
	}
	return &out, nil
}

// needs reports whether a clause, or one inside it, needs terminology.
func needs(c search.Clause) bool {
	switch {
	case c.Chain != nil:
		return needs(c.Chain.Filter)
	case c.Has != nil:
		return needs(c.Has.Filter)
	case c.Any != nil:
		return slices.ContainsFunc(c.Any, needs)
	case c.All != nil:
		return slices.ContainsFunc(c.All, needs)
	}
	if c.Type != search.Token {
		return false
	}
	switch c.Modifier {
	case "in", "not-in", "above", "below":
		return true
	}
	return false
}

// clause rewrites c, returning a copy wherever something changed.
func (e *expander) clause(ctx context.Context, c search.Clause) (search.Clause, error) {
	if !needs(c) {
		return c, nil
	}
	var err error
	switch {
	case c.Chain != nil:
		ch := *c.Chain
		ch.Filter, err = e.clause(ctx, ch.Filter)
		c.Chain = &ch
		return c, err
	case c.Has != nil:
		h := *c.Has
		h.Filter, err = e.clause(ctx, h.Filter)
		c.Has = &h
		return c, err
	case c.Any != nil:
		c.Any, err = e.clauses(ctx, c.Any)
		return c, err
	case c.All != nil:
		c.All, err = e.clauses(ctx, c.All)
		return c, err
	}
	name := c.Param + ":" + c.Modifier
	var set codeSet
	for _, v := range c.Values {
		var codes []Code
		switch c.Modifier {
		case "in", "not-in":
			codes, err = e.valueSet(ctx, name, v.Value, nil)
		default:
			codes, err = e.subsumed(ctx, name, c.Modifier == "above", v)
		}
		if err != nil {
			return search.Clause{}, err
		}
		for _, code := range codes {
			if set.add(code); set.len() > MaxCodes {
				return search.Clause{}, tooLarge(name, name+"="+v.Raw)
			}
		}
	}
	negated := c.Modifier == "not-in"
	if set.len() == 0 {
		if negated {
			// Nothing to be outside of: every resource matches.
			return search.Clause{Param: "_id", Type: search.Token, Modifier: "missing", Values: []search.Value{{Missing: false}}}, nil
		}
		return search.Clause{Any: []search.Clause{}}, nil
	}
	out := search.Clause{Param: c.Param, Type: search.Token}
	if negated {
		out.Modifier = "not"
	}
	for _, code := range set.list {
		out.Values = append(out.Values, search.Value{Raw: code.String(), System: code.System, Code: code.Code, HasSystem: true})
	}
	return out, nil
}

func (e *expander) clauses(ctx context.Context, cs []search.Clause) ([]search.Clause, error) {
	out := make([]search.Clause, len(cs))
	for i := range cs {
		var err error
		if out[i], err = e.clause(ctx, cs[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// subsumed answers token :above and :below (search.html#token): the code
// and every code the stored CodeSystem of its system puts above (its
// ancestors) or below it (its descendants).
func (e *expander) subsumed(ctx context.Context, param string, above bool, v search.Value) ([]Code, error) {
	if v.System == "" || v.Code == "" {
		return nil, badRequest(param, "%s takes [system]|[code] (subsumption is defined within one code system), not %q", param, v.Raw)
	}
	sys, err := e.codeSystem(ctx, param, v.System)
	if err != nil {
		return nil, err
	}
	if sys == nil {
		return nil, badRequest(param, "subsumption is unavailable for the code system %s: no CodeSystem with that url is stored on this server", v.System)
	}
	var codes []string
	if above {
		codes = sys.above(v.Code, true)
	} else {
		codes = sys.below(v.Code, true)
	}
	out := make([]Code, len(codes))
	for i, c := range codes {
		out[i] = Code{v.System, c}
	}
	return out, nil
}
