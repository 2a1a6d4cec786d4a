package rest

import (
	"errors"
	"net/http"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/store"
)

// create is POST [base]/[type] (http.html#create): the server assigns the
// id and ignores any id and meta.versionId/lastUpdated in the body.
func (a *API) create(w http.ResponseWriter, r *http.Request) error {
	typ := mux.Vars(r)["type"]
	if err := a.permit(r.Context(), OpCreate, typ, nil); err != nil {
		return err
	}
	parsed, err := a.parseBody(r, typ)
	if err != nil {
		return err
	}
	if criteria := r.Header.Get("If-None-Exist"); criteria != "" {
		if done, err := a.conditionalCreate(w, r, criteria); done || err != nil {
			return err
		}
	}
	return a.createParsed(w, r, parsed)
}

// createParsed stores parsed under a new server-assigned id.
func (a *API) createParsed(w http.ResponseWriter, r *http.Request, parsed *resource.Resource) error {
	for attempt := 0; ; attempt++ {
		ch, err := a.createChange(a.indexBase(r), parsed)
		if err != nil {
			return err
		}
		// The body as it will be stored (with its id): a patient may
		// create only in their own compartment.
		if err := a.permit(r.Context(), OpCreate, ch.Type, ch.Body); err != nil {
			return err
		}
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

// createChange is the change that creates parsed under a new id.
// Time-ordered UUIDs keep inserts at the right edge of the stores' B-tree
// indexes.
func (a *API) createChange(base string, parsed *resource.Resource) (store.Change, error) {
	return a.stamp(base, parsed, newID(), 1, store.MethodPost)
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// changed is the stored version a committed change became.
func changed(ch store.Change) store.Resource {
	return store.Resource{Type: ch.Type, ID: ch.ID, Version: ch.Version, LastUpdated: ch.LastUpdated, Method: ch.Method, Body: ch.Body}
}
