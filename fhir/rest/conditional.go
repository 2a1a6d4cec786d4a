package rest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Conditional interactions (http.html#cond-update, #ccreate, #cdelete)
// find their target by search. The criteria are parsed strictly whatever
// the request's Prefer says: an ignored parameter would widen the match
// and write to the wrong resource.
//
// The search and the write are two steps: two identical conditional
// creates racing each other can both create. The compare-and-set on the
// version still protects every update and delete from lost writes.

// matches runs the conditional criteria against typ and returns up to two
// matches (two is enough to tell "several"). base is the request's service
// base (a.base), for absolute references in the criteria. The access's confine clause narrows the search, so a
// conditional interaction can never find what the access may not see.
func (a *API) matches(ctx context.Context, base, typ, criteria string) ([]store.Resource, error) {
	params, err := url.ParseQuery(criteria)
	if err != nil {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeInvalid, "the conditional criteria are not a valid query string")
	}
	for _, k := range []string{"_count", "_sort", "_page", "_include", "_revinclude", "_summary", "_elements", "_total", "_format", "_pretty"} {
		delete(params, k)
	}
	q, _, err := a.queryRegistry().Parse([]string{typ}, params, search.ParseOptions{Strict: true, Base: base})
	a.noteIndexing([]string{typ}, nil, err)
	if err != nil {
		return nil, err
	}
	if len(q.Filter) == 0 {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeInvalid,
			"conditional criteria must name at least one search parameter")
	}
	// A conditional interaction is a search and a write: it needs s, and
	// it finds its target only among what the access may see, so that the
	// criteria cannot probe other patients' records.
	if err := a.confineQuery(ctx, q); err != nil {
		return nil, err
	}
	q.Count, q.Total = 2, search.TotalNone
	page, err := a.searcher.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	return page.Matches, nil
}

func severalMatches(n int, what string) error {
	return outcome.Newf(http.StatusPreconditionFailed, outcome.CodeMultiple,
		"the %s criteria match %d or more resources; they must match at most one", what, n)
}

// conditionalCreate answers POST with If-None-Exist: one match returns it
// (200) and creates nothing; several are 412; none creates.
func (a *API) conditionalCreate(w http.ResponseWriter, r *http.Request, criteria string) (bool, error) {
	found, err := a.matches(r.Context(), a.base(r), mux.Vars(r)["type"], criteria)
	if err != nil {
		return true, err
	}
	switch len(found) {
	case 0:
		return false, nil
	case 1:
		res := found[0]
		touch(r.Context(), res.Body)
		info(r).target = res.Type + "/" + res.ID
		versionHeaders(w.Header(), res)
		w.Header().Set("Location", a.base(r)+"/"+res.Type+"/"+res.ID+"/_history/"+fmt.Sprint(res.Version))
		if preferReturn(r) == "minimal" {
			w.WriteHeader(http.StatusOK)
			return true, nil
		}
		writeJSON(w, r, http.StatusOK, res.Body)
		return true, nil
	}
	return true, severalMatches(len(found), "If-None-Exist")
}

// conditionalUpdate is PUT [base]/[type]?criteria.
func (a *API) conditionalUpdate(w http.ResponseWriter, r *http.Request) error {
	typ := mux.Vars(r)["type"]
	if r.URL.RawQuery == "" {
		return outcome.New(http.StatusMethodNotAllowed, outcome.CodeNotSupported,
			"PUT needs an id ([type]/[id]) or search criteria ([type]?…)")
	}
	if err := a.permit(r.Context(), OpUpdate, typ, nil); err != nil {
		return err
	}
	parsed, err := a.parseBody(r, typ)
	if err != nil {
		return err
	}
	id, anyID, err := a.updateTarget(r.Context(), a.base(r), typ, r.URL.RawQuery, parsed.ID)
	if err != nil {
		return err
	}
	if id == "" {
		// No match and no id: a create with a server-assigned id.
		return a.createParsed(w, r, parsed)
	}
	return a.updateParsed(w, r, parsed, id, anyID)
}

// updateTarget decides what a conditional update writes
// (http.html#cond-update): no match and no body id → "" (create with a new
// id); no match with a body id → that id; one match → its id, which a body
// id must equal (anyID: the body may have none); several → 412.
func (a *API) updateTarget(ctx context.Context, base, typ, criteria, bodyID string) (id string, anyID bool, err error) {
	found, err := a.matches(ctx, base, typ, criteria)
	if err != nil {
		return "", false, err
	}
	switch len(found) {
	case 0:
		return bodyID, false, nil
	case 1:
		if bodyID != "" && bodyID != found[0].ID {
			return "", false, outcome.New(http.StatusBadRequest, outcome.CodeInvalid,
				fmt.Sprintf("the criteria match %s/%s but the body's id is %s", typ, found[0].ID, bodyID), typ+".id")
		}
		return found[0].ID, true, nil
	}
	return "", false, severalMatches(len(found), "conditional update")
}

// conditionalDelete is DELETE [base]/[type]?criteria; several matches are
// 412 (CapabilityStatement conditionalDelete: single).
func (a *API) conditionalDelete(w http.ResponseWriter, r *http.Request) error {
	typ := mux.Vars(r)["type"]
	if r.URL.RawQuery == "" {
		return outcome.New(http.StatusMethodNotAllowed, outcome.CodeNotSupported,
			"DELETE needs an id ([type]/[id]) or search criteria ([type]?…)")
	}
	if err := a.permit(r.Context(), OpDelete, typ, nil); err != nil {
		return err
	}
	found, err := a.matches(r.Context(), a.base(r), typ, r.URL.RawQuery)
	if err != nil {
		return err
	}
	switch len(found) {
	case 0:
		w.WriteHeader(http.StatusNoContent)
		return nil
	case 1:
		return a.deleteID(w, r, typ, found[0].ID)
	}
	return severalMatches(len(found), "conditional delete")
}
