package rest

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/store"
)

// read is GET [base]/[type]/[id] (http.html#read).
func (a *API) read(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	// The type first: without the scope, an id that exists and one that
	// does not answer the same 403.
	if err := a.permit(r.Context(), OpRead, v["type"], nil); err != nil {
		return err
	}
	res, err := a.store.Read(r.Context(), v["type"], v["id"])
	if err := a.permitVersion(r.Context(), OpRead, res, err); err != nil {
		return err
	}
	if err != nil {
		return readError(err, res)
	}
	if notModified(r, res) {
		versionHeaders(w.Header(), res)
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	return writeResource(w, r, res)
}

// permitVersion checks op on a version the store returned (with err, the
// store's answer): a version with a body is checked as it is; a delete
// by the version it deleted, so that a 410 tells only the access that may
// see the resource that it was deleted. Other answers (not found) pass.
func (a *API) permitVersion(ctx context.Context, op Op, res store.Resource, err error) error {
	switch {
	case err == nil && res.Body != nil:
		return a.permit(ctx, op, res.Type, res.Body)
	case (err == nil || errors.Is(err, store.ErrGone)) && res.Deleted() && res.Version > 1:
		// A delete is never the first version nor follows another delete
		// (deleting a deleted resource writes nothing).
		prev, perr := a.store.VRead(ctx, res.Type, res.ID, res.Version-1)
		if perr != nil {
			return perr
		}
		return a.permit(ctx, op, prev.Type, prev.Body)
	}
	return nil
}

// readError answers a read of a missing or deleted resource; a 410
// carries the ETag of the delete (http.html#read).
func readError(err error, res store.Resource) error {
	if errors.Is(err, store.ErrGone) {
		return outcome.Newf(http.StatusGone, outcome.CodeDeleted, "%s/%s was deleted", res.Type, res.ID).
			With("ETag", etag(res.Version)).With("Last-Modified", httpDate(res.LastUpdated)).Wrap(err)
	}
	if errors.Is(err, store.ErrNotFound) {
		return outcome.New(http.StatusNotFound, outcome.CodeNotFound, "resource not found").Wrap(err)
	}
	return err
}

// notModified implements conditional read (http.html#cread): If-None-Match
// wins over If-Modified-Since, as RFC 7232 §6 orders them.
func notModified(r *http.Request, res store.Resource) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for _, tag := range strings.Split(inm, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return true
			}
			if v, ok := parseETag(tag); ok && v == res.Version {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		t, err := http.ParseTime(ims)
		return err == nil && !res.LastUpdated.Truncate(time.Second).After(t)
	}
	return false
}
