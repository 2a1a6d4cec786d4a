package rest

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/store"
)

// listVersions is what history's _list keeps (http.html#history: "only
// include resource versions that are referenced in the specified list"):
// the resources List/id holds, every version of an item "Type/id" and the
// one version of an item "Type/id/_history/n". Removed entries
// (entry.deleted), contained, absolute and logical items name nothing on
// this server's history. A List the access may not read is as unknown as
// one that does not exist (listRefs). Never nil: a List of nothing keeps
// nothing.
func (a *API) listVersions(ctx context.Context, id string) ([]store.VersionRef, error) {
	refs, err := a.listRefs(ctx, id)
	if err != nil {
		return nil, err
	}
	out := []store.VersionRef{}
	seen := map[store.VersionRef]bool{}
	for _, ref := range refs {
		m, ok := versionRef(ref)
		if !ok || seen[m] {
			continue
		}
		seen[m] = true
		out = append(out, m)
	}
	if len(out) > maxListItems {
		return nil, outcome.Newf(http.StatusUnprocessableEntity, outcome.CodeTooCostly,
			"_list: the List holds %d items; Kiln's history reads at most %d", len(out), maxListItems)
	}
	return out, nil
}

// versionRef parses a relative literal reference, "Type/id" or
// "Type/id/_history/n".
func versionRef(ref string) (store.VersionRef, bool) {
	parts := strings.Split(ref, "/")
	if len(parts) != 2 && len(parts) != 4 {
		return store.VersionRef{}, false
	}
	m := store.VersionRef{Type: parts[0], ID: parts[1]}
	if m.Type == "" || m.ID == "" || strings.ContainsAny(ref, ":#") {
		return store.VersionRef{}, false
	}
	if len(parts) == 4 {
		v, err := strconv.ParseInt(parts[3], 10, 64)
		if parts[2] != "_history" || err != nil || v < 1 {
			return store.VersionRef{}, false
		}
		m.Version = v
	}
	return m, true
}
