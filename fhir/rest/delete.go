package rest

import (
	"context"
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
	ifMatch, err := ifMatchVersion(r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		ch, ok, err := a.deleteChange(r.Context(), typ, id, ifMatch)
		if err != nil {
			return err
		}
		if !ok {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
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

// deleteChange reads typ/id and returns the change that deletes it; ok is
// false when there is nothing to delete (never existed or already gone).
// ifMatch (0: none) must name the current version.
func (a *API) deleteChange(ctx context.Context, typ, id string, ifMatch int64) (store.Change, bool, error) {
	res, err := a.store.Read(ctx, typ, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
		if ifMatch != 0 {
			return store.Change{}, false, preconditionFailed(ifMatch, res.Version)
		}
		return store.Change{}, false, nil
	}
	if err != nil {
		return store.Change{}, false, err
	}
	if err := a.permitStored(ctx, OpDelete, res, nil); err != nil {
		return store.Change{}, false, err
	}
	if ifMatch != 0 && ifMatch != res.Version {
		return store.Change{}, false, preconditionFailed(ifMatch, res.Version)
	}
	touch(ctx, res.Body) // the audit links the delete to the patient it concerned
	return store.Change{Type: typ, ID: id, Version: res.Version + 1, LastUpdated: a.now(), Method: store.MethodDelete}, true, nil
}
