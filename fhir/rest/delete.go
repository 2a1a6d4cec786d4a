package rest

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/store"
)

// delete is DELETE [base]/[type]/[id] (http.html#delete). Deleting a
// resource that does not exist or is already deleted succeeds without
// writing a version (204), as http.html allows.
func (a *API) delete(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	return a.deleteID(w, r, v["type"], v["id"])
}

// deleteID writes a delete version of typ/id unless it is already gone.
func (a *API) deleteID(w http.ResponseWriter, r *http.Request, typ, id string) error {
	if err := a.permit(r.Context(), OpDelete, typ, nil); err != nil {
		return err
	}
	ifMatch, err := ifMatchVersion(r)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		res, err := a.store.Read(r.Context(), typ, id)
		if err == nil {
			if err := a.permitStored(r.Context(), OpDelete, res, nil); err != nil {
				return err
			}
		}
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
			if ifMatch != 0 {
				return preconditionFailed(ifMatch, res.Version)
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		if err != nil {
			return err
		}
		if ifMatch != 0 && ifMatch != res.Version {
			return preconditionFailed(ifMatch, res.Version)
		}
		ch := store.Change{Type: typ, ID: id, Version: res.Version + 1, LastUpdated: a.now(), Method: store.MethodDelete}
		err = a.store.Commit(r.Context(), ch)
		if errors.Is(err, store.ErrVersionConflict) && ifMatch == 0 && attempt < maxRetries {
			continue
		}
		if errors.Is(err, store.ErrVersionConflict) && ifMatch != 0 {
			return preconditionFailed(ifMatch, -1)
		}
		if err != nil {
			return err
		}
		w.Header().Set("ETag", etag(ch.Version))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
