package rest

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
)

// refuseAmbiguous refuses a bare id on a reference parameter that names
// resources of more than one of the parameter's target types
// (search.html#reference: "if the id is ambiguous … the server SHOULD
// reject the request", B-REF-02). Ambiguous is read precisely: the id is
// ambiguous when this server holds resources with that id, readable by
// the access, of two or more of the types the parameter may point to.
// Refusing every bare id on a parameter with several target types would
// break the common practice of clients that send subject=123 meaning the
// one resource 123 there is; a bare id that names one resource, or none,
// is answered as before (a reference to that id of any type).
//
// A parameter with one target (patient) never gets here: Parse already
// made its bare ids "Patient/123". Nor does one with :[type], chains,
// _has, or the clauses the server adds (compartments, access), whose
// references are typed.
func (a *API) refuseAmbiguous(ctx context.Context, q *search.Query) error {
	reg := a.queryRegistry()
	for _, c := range q.Filter {
		if c.Type != search.Reference || c.Modifier != "" || c.Chain != nil {
			continue
		}
		var targets []string
		for _, v := range c.Values {
			if v.RefType != "" || v.Ref == "" || strings.ContainsAny(v.Ref, "/:#|") {
				continue
			}
			if targets == nil {
				targets = paramTargets(reg, q.Types, c.Param)
			}
			if len(targets) < 2 {
				break
			}
			if err := a.oneTargetHolds(ctx, c.Param, v.Ref, targets); err != nil {
				return err
			}
		}
	}
	return nil
}

// paramTargets is the union of the parameter's target types over the
// types searched (all the registry knows for a system search without
// _type), restricted to types the registry knows.
func paramTargets(reg *search.Registry, types []string, param string) []string {
	if types == nil {
		types = reg.Types()
	}
	var out []string
	for _, t := range types {
		p, ok := reg.Param(t, param)
		if !ok {
			continue
		}
		for _, target := range p.Targets {
			if !slices.Contains(out, target) && reg.Params(target) != nil {
				out = append(out, target)
			}
		}
	}
	slices.Sort(out)
	return out
}

// oneTargetHolds answers 400 when id names live resources the access may
// read of two or more of targets. One query over the target types finds
// them (by _id, through each backend's id index), not one read per type:
// a parameter such as Provenance.target may point to any type.
func (a *API) oneTargetHolds(ctx context.Context, param, id string, targets []string) error {
	page, err := a.store.Search(ctx, &search.Query{
		Types:  targets,
		Filter: []search.Clause{{Param: "_id", Type: search.Token, Values: []search.Value{{Raw: id, Code: id}}}},
		Count:  len(targets),
		Total:  search.TotalNone,
	})
	if err != nil {
		return err
	}
	var found []string
	for _, m := range page.Matches {
		err := a.permit(ctx, OpRead, m.Type, m.Body)
		if isNotVisible(err) {
			continue // what the access may not see makes nothing ambiguous
		}
		if err != nil {
			return err
		}
		found = append(found, m.Type+"/"+m.ID)
	}
	if len(found) < 2 {
		return nil
	}
	slices.Sort(found)
	return outcome.Newf(http.StatusBadRequest, outcome.CodeMultiple,
		"%s=%s is ambiguous: it names %s; name the type, as %s=%s or %s:%s=%s",
		param, id, strings.Join(found, ", "), param, found[0], param, found[0][:strings.Index(found[0], "/")], id)
}
