package rest

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
)

// maxIncluded bounds the resources _include and _revinclude may add to one
// page, so that a page's cost stays proportional to _count.
const maxIncluded = 1000

// searchType is GET [base]/[type]?… and POST [base]/[type]/_search
// (search.html#search).
func (a *API) searchType(w http.ResponseWriter, r *http.Request) error {
	return a.search(w, r, []string{mux.Vars(r)["type"]})
}

// searchSystem is GET [base]?… and POST [base]/_search: every type, or the
// _type list.
func (a *API) searchSystem(w http.ResponseWriter, r *http.Request) error {
	return a.search(w, r, nil)
}

func (a *API) search(w http.ResponseWriter, r *http.Request, types []string) error {
	return a.searchWith(w, r, types, nil)
}

// searchWith runs a search with an extra clause the server adds (a
// compartment), which the self link does not show: it is in the path.
func (a *API) searchWith(w http.ResponseWriter, r *http.Request, types []string, extra *search.Clause) error {
	return a.searchIn(w, r, types, nil, extra)
}

// searchIn is searchWith at system level confined to the types within
// (nil: no bound): those the query names with _type, or else all of them.
func (a *API) searchIn(w http.ResponseWriter, r *http.Request, types, within []string, extra *search.Clause) error {
	params, err := searchParams(r)
	if err != nil {
		return err
	}
	noteQuery(r, params)
	q, report, err := a.queryRegistry().Parse(types, params, search.ParseOptions{
		Strict: a.strict(r), DefaultCount: defaultCount, MaxCount: maxCount, Base: a.base(r),
	})
	a.noteIndexing(types, &report, err)
	if err != nil {
		return err
	}
	if within != nil {
		asked := q.Types
		q.Types = nil
		for _, t := range within {
			if asked == nil || slices.Contains(asked, t) {
				q.Types = append(q.Types, t)
			}
		}
		if len(q.Types) == 0 {
			// Never nil here: nil would be every type.
			return outcome.Newf(http.StatusBadRequest, outcome.CodeNotFound,
				"_type=%s: none of these types is in the compartment", strings.Join(asked, ","))
		}
	}
	if extra != nil {
		q.Filter = append(q.Filter, *extra)
	}
	// Access control: the matches, and what chains and _has test, only
	// among what the access may see (permit.go). Includes are filtered
	// below.
	if err := a.confineQuery(r.Context(), q); err != nil {
		return err
	}
	page, err := a.searcher.Search(r.Context(), q)
	if err != nil {
		return err
	}
	base := a.base(r)
	b := newBundle("searchset", a.now())
	if page.Total >= 0 {
		b.Total = &page.Total
	}
	self := base + r.URL.Path
	if strings.HasSuffix(self, "/_search") {
		self = strings.TrimSuffix(self, "/_search")
	}
	if report.Self != "" {
		self += "?" + report.Self
	}
	// http.html#paging (RFC 5005 names): self is this page, first the
	// query without a cursor, previous and next the keyset cursors the
	// store gave, which stay correct while data changes.
	first := self
	at := func(cursor string) string {
		sep := "?"
		if strings.Contains(first, "?") {
			sep = "&"
		}
		return first + sep + pageParam + "=" + url.QueryEscape(cursor)
	}
	if q.Cursor != "" {
		self = at(q.Cursor)
	}
	b.Link = append(b.Link, bundleLink{"self", self})
	if q.Cursor != "" || page.Next != "" {
		b.Link = append(b.Link, bundleLink{"first", first})
	}
	if page.Prev != "" {
		b.Link = append(b.Link, bundleLink{"previous", at(page.Prev)})
	}
	if page.Next != "" {
		b.Link = append(b.Link, bundleLink{"next", at(page.Next)})
	}
	seen := map[string]bool{}
	for _, m := range page.Matches {
		seen[m.Type+"/"+m.ID] = true
		e, err := a.searchEntry(base, q, m, "match")
		if err != nil {
			return err
		}
		b.Entry = append(b.Entry, e)
	}
	included, err := a.includes(r, q, page.Matches, seen)
	if err != nil {
		return err
	}
	for _, inc := range included {
		e, err := a.searchEntry(base, q, inc, "include")
		if err != nil {
			return err
		}
		b.Entry = append(b.Entry, e)
	}
	versioned, err := a.versionedChainIssues(q, page.Matches) // versioned.go
	if err != nil {
		return err
	}
	if issues := append(report.Issues(), versioned...); len(issues) > 0 {
		// search.html#errors: a lenient search says what it ignored in an
		// OperationOutcome entry (mode outcome, never error or fatal).
		b.Entry = append(b.Entry, bundleEntry{
			Resource: outcome.Resource(issues),
			Search:   &entrySearch{Mode: "outcome"},
		})
	}
	return b.write(w, r)
}

// searchEntry renders one match or include, subsetted as _summary and
// _elements ask.
func (a *API) searchEntry(base string, q *search.Query, res store.Resource, mode string) (bundleEntry, error) {
	body := res.Body
	var err error
	switch {
	case q.Summary != "" && q.Summary != "count" && q.Summary != "false":
		body, err = resource.Summary(body, q.Summary)
	case len(q.Elements) > 0 && mode == "match":
		// search.html#elements: _elements does not apply to included resources.
		body, err = resource.Elements(body, q.Elements)
	}
	if err != nil {
		return bundleEntry{}, err
	}
	return bundleEntry{
		FullURL:  base + "/" + res.Type + "/" + res.ID,
		Resource: body,
		Search:   &entrySearch{Mode: mode},
	}, nil
}

// includes follows _include and _revinclude (search.html#include) from the
// matches, then, for :iterate, from what was included, until nothing new
// turns up. seen holds what the bundle already has, so nothing appears
// twice.
func (a *API) includes(r *http.Request, q *search.Query, matches []store.Resource, seen map[string]bool) ([]store.Resource, error) {
	if len(q.Include) == 0 || len(matches) == 0 {
		return nil, nil
	}
	var out []store.Resource
	from := matches
	for round := 0; len(from) > 0 && round < 4; round++ {
		var next []store.Resource
		for _, inc := range q.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			var found []store.Resource
			var err error
			if inc.Reverse {
				found, err = a.revInclude(r, inc, from)
			} else {
				found, err = a.forwardInclude(r, inc, from)
			}
			if err != nil {
				return nil, err
			}
			for _, f := range found {
				key := f.Type + "/" + f.ID
				if seen[key] {
					continue
				}
				seen[key] = true
				next = append(next, f)
				if len(out)+len(next) > maxIncluded {
					return nil, outcome.Newf(http.StatusBadRequest, outcome.CodeTooCostly,
						"_include and _revinclude would add more than %d resources to one page: lower _count", maxIncluded)
				}
			}
		}
		out = append(out, next...)
		from = next
	}
	return out, nil
}

// forwardInclude reads the resources that the references of inc.Param in
// from point at.
func (a *API) forwardInclude(r *http.Request, inc search.Include, from []store.Resource) ([]store.Resource, error) {
	var out []store.Resource
	for _, res := range from {
		if inc.Type != "*" && res.Type != inc.Type {
			continue
		}
		entries, err := a.indexRegistry().Extract(res.Type, res.Body)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Type != search.Reference || (inc.Param != "*" && e.Param != inc.Param) {
				continue
			}
			typ, id, ok := strings.Cut(e.Ref, "/")
			if !ok || strings.Contains(id, "/") || (inc.Target != "" && typ != inc.Target) {
				continue // absolute, contained or canonical: not on this server
			}
			got, err := a.includeTarget(r.Context(), typ, id, e.Value) // versioned.go
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
				continue // a dangling reference includes nothing
			}
			if err != nil {
				return nil, err
			}
			// What the access may not read is left out, not refused: the
			// search itself was allowed.
			err = a.permit(r.Context(), OpRead, typ, got.Body)
			if isNotVisible(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, got)
		}
	}
	return out, nil
}

// revInclude searches the resources of type inc.Type whose reference
// inc.Param points at one of from.
func (a *API) revInclude(r *http.Request, inc search.Include, from []store.Resource) ([]store.Resource, error) {
	clause := search.Clause{Param: inc.Param, Type: search.Reference}
	for _, res := range from {
		if inc.Target != "" && res.Type != inc.Target {
			continue
		}
		clause.Values = append(clause.Values, search.Value{Raw: res.Type + "/" + res.ID, Ref: res.Type + "/" + res.ID, RefType: res.Type})
	}
	if len(clause.Values) == 0 {
		return nil, nil
	}
	filter := []search.Clause{clause}
	// Only what the access may read is included; a type it may not read
	// at all includes nothing (filtered, not refused).
	confined, err := a.restrict(r.Context(), OpRead, inc.Type)
	if isNotVisible(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if confined != nil {
		filter = append(filter, *confined)
	}
	page, err := a.searcher.Search(r.Context(), &search.Query{
		Types:  []string{inc.Type},
		Filter: filter,
		Count:  maxIncluded + 1,
		Total:  search.TotalNone,
	})
	if err != nil {
		return nil, err
	}
	return page.Matches, nil
}

// searchParams merges the query string with a POST _search form body
// (search.html#search: parameters may be split between the two).
func searchParams(r *http.Request) (url.Values, error) {
	params := r.URL.Query()
	if r.Method != http.MethodPost {
		return params, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, outcome.Newf(http.StatusUnsupportedMediaType, outcome.CodeNotSupported,
				"POST _search takes application/x-www-form-urlencoded parameters, not %q", ct)
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure, "the form body is not valid application/x-www-form-urlencoded")
	}
	for k, vs := range form {
		params[k] = append(params[k], vs...)
	}
	return params, nil
}

// strict reports whether unknown search parameters are errors for this
// request: Prefer: handling=strict|lenient, else the server default.
func (a *API) strict(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			if strings.EqualFold(k, "handling") {
				return strings.EqualFold(strings.Trim(val, `" `), "strict")
			}
		}
	}
	return a.cfg.StrictSearch
}
