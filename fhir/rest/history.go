package rest

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/store"
)

const (
	defaultCount = 50
	maxCount     = 1000
	// pageParam carries the store's opaque keyset cursor in next links.
	pageParam = "_page"
)

// Type and system history need s (SMART scopes: "type and system
// history") on every resource of the type, or of every type: the store's
// history has no search filter, and filtering its pages here would still
// reveal how much others write. So an access confined to a compartment
// (or by a granular scope) is refused them with 403, and uses instance
// history or a search with _lastUpdated instead.
func (a *API) historySystem(w http.ResponseWriter, r *http.Request) error {
	if err := a.wholeHistory(r, "*"); err != nil {
		return err
	}
	return a.history(w, r, "", "", false)
}

func (a *API) historyType(w http.ResponseWriter, r *http.Request) error {
	typ := mux.Vars(r)["type"]
	if err := a.wholeHistory(r, typ); err != nil {
		return err
	}
	return a.history(w, r, typ, "", false)
}

func (a *API) wholeHistory(r *http.Request, typ string) error {
	cl, err := a.confine(r.Context(), typ)
	if err != nil {
		return err
	}
	if cl != nil {
		what := typ
		if typ == "*" {
			what = "every type"
		}
		return refuse("history of %s is not available to an access confined to a patient's compartment or a granular scope: "+
			"use instance history, or search with _lastUpdated", what)
	}
	return nil
}

func (a *API) historyInstance(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	if err := a.permit(r.Context(), OpRead, v["type"], nil); err != nil {
		return err
	}
	// http.html#history: an instance that never existed has no history.
	// A deleted one still has (ErrGone is fine). One the access may not
	// see is answered like one that never existed.
	res, err := a.store.Read(r.Context(), v["type"], v["id"])
	if err := a.permitVersion(r.Context(), OpRead, res, err); err != nil {
		return err
	}
	if err != nil && !errors.Is(err, store.ErrGone) {
		return readError(err, store.Resource{})
	}
	confined, err := a.restrict(r.Context(), OpRead, v["type"])
	if err != nil {
		return err
	}
	return a.history(w, r, v["type"], v["id"], confined != nil)
}

// history answers the three history interactions (http.html#history):
// newest first, deletes included, paged with keyset cursors so pages do
// not shift while new versions are written. filter (instance history
// under a confined access) leaves out the versions the access may not
// see (a resource can move between compartments across versions) and,
// since pages then hold fewer versions than counted, the total.
func (a *API) history(w http.ResponseWriter, r *http.Request, typ, id string, filter bool) error {
	q, used, err := historyQuery(r.URL.Query())
	if err != nil {
		return err
	}
	q.Type, q.ID = typ, id
	if list := used.Get("_list"); list != "" {
		if q.Only, err = a.listVersions(r.Context(), list); err != nil {
			return err
		}
	}
	base := a.base(r)
	b := newBundle("history", a.now())
	count := q.Count
	if count == 0 {
		q.Count = 1 // the store needs a page; only the total is sent
	}
	page, err := a.store.History(r.Context(), q)
	if err != nil {
		return err
	}
	if !filter {
		b.Total = &page.Total
	}
	b.Link = append(b.Link, bundleLink{"self", pageURL(base, r, used)})
	if count > 0 {
		for _, v := range page.Versions {
			if filter {
				err := a.permitVersion(r.Context(), OpRead, v, nil)
				if isNotVisible(err) {
					continue
				}
				if err != nil {
					return err
				}
			}
			b.Entry = append(b.Entry, historyEntry(base, v))
		}
		if page.Next != "" {
			next := cloneValues(used)
			next.Set(pageParam, page.Next)
			b.Link = append(b.Link, bundleLink{"next", pageURL(base, r, next)})
		}
	}
	return b.write(w, r)
}

// historyQuery reads _count, _since, _at, _list and the page cursor; each
// may appear once (http.html#history). used is what the self link reports:
// the parameters actually applied.
func historyQuery(params url.Values) (store.HistoryQuery, url.Values, error) {
	q := store.HistoryQuery{Count: defaultCount}
	used := url.Values{}
	for name, vals := range params {
		switch name {
		case "_count", "_since", "_at", pageParam, "_list":
		default:
			continue // unknown parameters are ignored (and left out of self)
		}
		if len(vals) > 1 {
			return q, nil, outcome.Newf(http.StatusBadRequest, outcome.CodeInvalid, "%s may appear only once", name)
		}
		v := vals[0]
		switch name {
		case "_count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return q, nil, outcome.New(http.StatusBadRequest, outcome.CodeValue, "_count must be a non-negative integer", "_count")
			}
			q.Count = min(n, maxCount)
			used.Set(name, strconv.Itoa(q.Count))
		case "_since":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return q, nil, outcome.New(http.StatusBadRequest, outcome.CodeValue,
					"_since must be an instant with a time zone, e.g. 2024-01-31T09:30:00Z", "_since")
			}
			q.Since = t
			used.Set(name, v)
		case "_at":
			start, end, err := parseDateRange(v)
			if err != nil {
				return q, nil, outcome.New(http.StatusBadRequest, outcome.CodeValue,
					"_at must be a FHIR date or dateTime, e.g. 2024-01 or 2024-01-31T09:30:00Z", "_at")
			}
			q.AtStart, q.AtEnd = start, end
			used.Set(name, v)
		case pageParam:
			q.Cursor = v
		case "_list":
			// Read by the caller (listVersions): it needs the store.
			if v == "" {
				return q, nil, outcome.New(http.StatusBadRequest, outcome.CodeValue, "_list must name a List", "_list")
			}
			used.Set(name, v)
		}
	}
	return q, used, nil
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v)+1)
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}
