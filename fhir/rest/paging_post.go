package rest

import (
	"net/http"

	"github.com/gorilla/mux"
)

// mountPagingPost routes POST on a search's paging links. http.html#paging:
// a search started by POST [base]/[type]/_search continues by links the
// client follows with GET, and the server SHOULD also accept POST on
// them. Those links are [base]/[type]?…&_page=… and [base]?…&_page=…,
// where a POST is otherwise a create or a batch/transaction; neither ever
// carries _page in its query string (conditional create names its query
// in If-None-Exist), so a POST that does is the search continuing. The
// form body, if any, adds parameters as on _search (search.html#search);
// the cursor is bound to the query, so a client must not send the
// original parameters again. Mounted ahead of the interaction table, which
// mux tries in order.
func (a *API) mountPagingPost(r *mux.Router) {
	paging := func(r *http.Request, _ *mux.RouteMatch) bool { return r.URL.Query().Has(pageParam) }
	r.Handle("/"+typePat, a.wrap("search-type", (*API).searchType)).Methods(http.MethodPost).MatcherFunc(paging)
	r.Handle("/", a.wrap("search-system", (*API).searchSystem)).Methods(http.MethodPost).MatcherFunc(paging)
}
