package rest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// Versioned references (search.html#versions, B-REF-05): a reference may
// name one version of a resource ("Patient/1/_history/2"). Searching by
// it finds the resource (the index keeps the reference without its
// version), a chain through it tests the resource's current version, and
// _include returns the version it names.

// includeTarget reads what an _include follows: the version a versioned
// reference names (vread), else the current version. A version that does
// not exist, or is a delete, includes nothing (ErrNotFound, ErrGone), as
// a dangling reference does. A version that is not a versionId (a
// relative canonical's |1.0 is a business version) reads the current one.
func (a *API) includeTarget(ctx context.Context, typ, id, version string) (store.Resource, error) {
	if v, err := strconv.ParseInt(version, 10, 64); err == nil && v > 0 {
		return a.store.VRead(ctx, typ, id, v)
	}
	return a.store.Read(ctx, typ, id)
}

// versionedChainIssues warns, in the searchset's outcome entry, when a
// chain of the query went through a versioned reference of a match on
// this page: search.html says chaining evaluates the current version of
// the referenced resource and the server SHOULD say so. Only the chain's
// first link is looked at (the match's own reference); one issue per
// chained parameter.
func (a *API) versionedChainIssues(q *search.Query, matches []store.Resource) ([]outcome.Issue, error) {
	var chained []string
	for _, c := range q.Filter {
		if c.Chain != nil && !slices.Contains(chained, c.Param) {
			chained = append(chained, c.Param)
		}
	}
	if len(chained) == 0 {
		return nil, nil
	}
	var issues []outcome.Issue
	warned := map[string]bool{}
	for _, m := range matches {
		entries, err := a.indexRegistry().ExtractParams(m.Type, m.Body, "", chained)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type != search.Reference || e.Value == "" || warned[e.Param] || !slices.Contains(chained, e.Param) {
				continue
			}
			// A relative "Type/id" with a version came from
			// "Type/id/_history/n"; a canonical's |version has a URL.
			if typ, id, ok := strings.Cut(e.Ref, "/"); !ok || typ == "" || strings.ContainsAny(id, "/:") {
				continue
			}
			warned[e.Param] = true
			issues = append(issues, outcome.Issue{
				Severity: outcome.Warning, Code: outcome.CodeInformation,
				Diagnostics: fmt.Sprintf("%s of %s/%s is a versioned reference (%s/_history/%s): the chain was "+
					"evaluated on the current version of %s, not on the version named (search.html#versions)",
					e.Param, m.Type, m.ID, e.Ref, e.Value, e.Ref),
				Expression: []string{e.Param},
			})
		}
	}
	return issues, nil
}
