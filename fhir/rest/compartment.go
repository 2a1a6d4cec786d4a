package rest

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
)

// compartmentTypes are the types that define a compartment in R4
// (compartmentdefinition.html).
var compartmentTypes = map[string]bool{
	"Patient": true, "Encounter": true, "RelatedPerson": true, "Practitioner": true, "Device": true,
}

// searchCompartment is GET [base]/[compartment]/[id]/[type]?… (http.html#
// search, compartments.html): a type-level search restricted to the
// resources that the CompartmentDefinition puts in the compartment of
// [compartment]/[id].
func (a *API) searchCompartment(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	comp, id, typ := v["compartment"], v["id"], v["type"]
	if !compartmentTypes[comp] {
		return outcome.Newf(http.StatusNotFound, outcome.CodeNotSupported, "%s does not define a compartment", comp)
	}
	if err := checkType(typ); err != nil {
		return err
	}
	params := a.cfg.Registry.Compartment(comp, typ)
	if len(params) == 0 {
		return outcome.Newf(http.StatusNotFound, outcome.CodeNotFound, "%s resources are not in the %s compartment", typ, comp)
	}
	member := compartmentMember(comp, id, params)
	return a.searchWith(w, r, []string{typ}, &member)
}

// searchCompartmentAll is GET [base]/[compartment]/[id]/* (http.html#
// search: "*" is every type in the compartment): one search over the
// types the CompartmentDefinition lists, each confined by its own
// parameters, paged like any other. _type narrows the types.
func (a *API) searchCompartmentAll(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	comp, id := v["compartment"], v["id"]
	if !compartmentTypes[comp] {
		return outcome.Newf(http.StatusNotFound, outcome.CodeNotSupported, "%s does not define a compartment", comp)
	}
	// One branch per set of parameters, for all the types that share it
	// (23 types of the Patient compartment are in it by patient alone):
	// 25 branches instead of 67, which a store without indexes (FerretDB)
	// feels on every page.
	member := search.Clause{Any: []search.Clause{}}
	var types []string
	branch := map[string]int{} // the parameters, joined → index in member.Any
	for _, typ := range a.cfg.Registry.Types() {
		params := a.cfg.Registry.Compartment(comp, typ)
		if len(params) == 0 {
			continue
		}
		types = append(types, typ)
		key := strings.Join(params, " ")
		i, ok := branch[key]
		if !ok {
			i = len(member.Any)
			branch[key] = i
			member.Any = append(member.Any, search.Clause{All: []search.Clause{
				{Param: "_type", Type: search.Token},
				compartmentMember(comp, id, params),
			}})
		}
		t := &member.Any[i].All[0]
		t.Values = append(t.Values, search.Value{Raw: typ, Code: typ})
	}
	return a.searchIn(w, r, nil, types, &member)
}

// compartmentMember is the clause that puts a resource in the compartment
// of comp/id: one of params (the CompartmentDefinition's, for its type)
// points at it, or, for "{def}", it is that resource.
func compartmentMember(comp, id string, params []string) search.Clause {
	member := search.Clause{}
	ref := search.Value{Raw: comp + "/" + id, Ref: comp + "/" + id, RefType: comp}
	for _, p := range params {
		if p == "{def}" {
			// The compartment's own resource (Patient/123 in its compartment).
			member.Any = append(member.Any, search.Clause{Param: "_id", Type: search.Token, Values: []search.Value{{Raw: id, Code: id}}})
			continue
		}
		member.Any = append(member.Any, search.Clause{Param: p, Type: search.Reference, Values: []search.Value{ref}})
	}
	return member
}
