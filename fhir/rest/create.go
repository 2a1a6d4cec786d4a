package rest

import (
	"errors"
	"net/http"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/store"
)

// create is POST [base]/[type] (http.html#create): the server assigns the
// id and ignores any id and meta.versionId/lastUpdated in the body.
func (a *API) create(w http.ResponseWriter, r *http.Request) error {
	typ := mux.Vars(r)["type"]
	if r.Header.Get("If-None-Exist") != "" {
		// http.html#ccreate needs search; until then say so (A-CC-04).
		return outcome.New(http.StatusBadRequest, outcome.CodeNotSupported, "conditional create (If-None-Exist) is not supported yet")
	}
	parsed, err := a.parseBody(r, typ)
	if err != nil {
		return err
	}
	// Time-ordered UUIDs keep inserts at the right edge of the stores'
	// B-tree indexes.
	for attempt := 0; ; attempt++ {
		id := uuid.Must(uuid.NewV7()).String()
		now := a.now()
		body, err := parsed.Stamp(id, 1, now)
		if err != nil {
			return err
		}
		ch := store.Change{Type: typ, ID: id, Version: 1, LastUpdated: now, Method: store.MethodPost, Body: body}
		err = a.store.Commit(r.Context(), ch)
		if errors.Is(err, store.ErrVersionConflict) && attempt < 3 {
			continue // an id collision: draw another
		}
		if err != nil {
			return err
		}
		a.writeWritten(w, r, http.StatusCreated, changed(ch))
		return nil
	}
}

// changed is the stored version a committed change became.
func changed(ch store.Change) store.Resource {
	return store.Resource{Type: ch.Type, ID: ch.ID, Version: ch.Version, LastUpdated: ch.LastUpdated, Method: ch.Method, Body: ch.Body}
}
