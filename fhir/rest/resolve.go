package rest

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/fhir/terminology"
	"github.com/kiln-fhir/kiln/store"
)

// resolver is the searcher every search of the API goes through: before
// the store sees a query, what it names on this server — ValueSets and
// CodeSystems for the token modifiers (fhir/terminology), Lists for _list
// — is read through the store's ordinary interfaces and replaced by plain
// clauses, so no backend needs terminology or List logic; a bare id that
// names resources of several target types is refused (ambiguous.go).
type resolver struct{ a *API }

func (r resolver) Search(ctx context.Context, q *search.Query) (store.SearchPage, error) {
	if err := r.a.refuseAmbiguous(ctx, q); err != nil {
		return store.SearchPage{}, err
	}
	q, err := terminology.Resolve(ctx, r.a.store, q)
	if err != nil {
		return store.SearchPage{}, err
	}
	if q, err = r.a.lists(ctx, q); err != nil {
		return store.SearchPage{}, err
	}
	return r.a.store.Search(ctx, q)
}

// maxListItems bounds the items one _list brings into a query.
const maxListItems = 1000

// lists replaces each _list clause (search.html#list) with the resources
// its Lists hold: entry.item references to this server ("Type/id"), less
// the entries marked deleted (list.html: the item was removed from the
// list). A List the access may not read is as unknown as one that does
// not exist. q is returned as is when it has no _list.
func (a *API) lists(ctx context.Context, q *search.Query) (*search.Query, error) {
	if !slices.ContainsFunc(q.Filter, func(c search.Clause) bool { return c.Param == "_list" }) {
		return q, nil
	}
	out := *q
	out.Filter = slices.Clone(q.Filter)
	for i, c := range out.Filter {
		if c.Param != "_list" {
			continue
		}
		byType := map[string][]search.Value{}
		n := 0
		for _, v := range c.Values {
			items, err := a.listItems(ctx, v.Code)
			if err != nil {
				return nil, err
			}
			for _, it := range items {
				typ, id, _ := strings.Cut(it, "/")
				if !slices.ContainsFunc(byType[typ], func(x search.Value) bool { return x.Code == id }) {
					byType[typ] = append(byType[typ], search.Value{Raw: id, Code: id})
					n++
				}
			}
		}
		if n > maxListItems {
			return nil, outcome.Newf(http.StatusUnprocessableEntity, outcome.CodeTooCostly,
				"_list: the Lists hold %d items; Kiln searches at most %d", n, maxListItems)
		}
		// One clause per type the search covers: the ids of that type's
		// items, tested with the resource's own type.
		member := search.Clause{Any: []search.Clause{}}
		// In a fixed order: the query fingerprints the paging cursor.
		types := slices.Sorted(maps.Keys(byType))
		for _, typ := range types {
			ids := byType[typ]
			if q.Types != nil && !slices.Contains(q.Types, typ) {
				continue
			}
			byID := search.Clause{Param: "_id", Type: search.Token, Values: ids}
			if len(q.Types) == 1 {
				member.Any = append(member.Any, byID)
				continue
			}
			member.Any = append(member.Any, search.Clause{All: []search.Clause{
				{Param: "_type", Type: search.Token, Values: []search.Value{{Raw: typ, Code: typ}}},
				byID,
			}})
		}
		if len(member.Any) == 1 {
			member = member.Any[0]
		}
		out.Filter[i] = member
	}
	return &out, nil
}

// listItems reads List/id and returns its items on this server as
// "Type/id".
func (a *API) listItems(ctx context.Context, id string) ([]string, error) {
	refs, err := a.listRefs(ctx, id)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ref := range refs {
		typ, rid, ok := strings.Cut(ref, "/")
		// Contained (#x), absolute, versioned and logical (identifier-only)
		// items are not resources of this server's search.
		if !ok || typ == "" || strings.ContainsAny(rid, "/:#") || rid == "" {
			continue
		}
		out = append(out, typ+"/"+rid)
	}
	return out, nil
}

// listRefs reads List/id and returns the references of its entries that
// were not removed (list.html: entry.deleted), as written.
func (a *API) listRefs(ctx context.Context, id string) ([]string, error) {
	unknown := outcome.Newf(http.StatusBadRequest, outcome.CodeNotFound, "_list: unknown List %s", id)
	got, err := a.store.Read(ctx, "List", id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
		return nil, unknown
	}
	if err != nil {
		return nil, err
	}
	err = a.permit(ctx, OpRead, "List", got.Body)
	if isNotVisible(err) {
		return nil, unknown
	}
	if err != nil {
		return nil, err
	}
	var list struct {
		Entry []struct {
			Deleted bool `json:"deleted"`
			Item    struct {
				Reference string `json:"reference"`
			} `json:"item"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(got.Body, &list); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range list.Entry {
		if !e.Deleted && e.Item.Reference != "" {
			out = append(out, e.Item.Reference)
		}
	}
	return out, nil
}
