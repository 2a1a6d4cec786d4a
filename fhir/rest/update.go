package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/store"
)

// maxRetries bounds how often an unconditional write re-reads and retries
// after losing a compare-and-set to a concurrent writer.
const maxRetries = 5

// update is PUT [base]/[type]/[id] (http.html#update), including
// update-as-create with a client-chosen id and resurrection of a deleted
// resource (both 201).
func (a *API) update(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	typ, id := v["type"], v["id"]
	if err := a.permit(r.Context(), OpUpdate, typ, nil); err != nil {
		return err
	}
	parsed, err := a.parseBody(r, typ)
	if err != nil {
		return err
	}
	return a.updateParsed(w, r, parsed, id, false)
}

// updateParsed writes parsed as the next version of typ/id. anyID lets a
// body without id through (conditional update found the target).
func (a *API) updateParsed(w http.ResponseWriter, r *http.Request, parsed *resource.Resource, id string, anyID bool) error {
	ifMatch, err := ifMatchVersion(r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	if err := checkBodyID(parsed, id, anyID); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		ch, status, err := a.updateChange(r.Context(), a.indexBase(r), parsed, id, ifMatch)
		if err != nil {
			return err
		}
		err = a.store.Commit(r.Context(), ch)
		if errors.Is(err, store.ErrVersionConflict) {
			// Someone wrote between our read and our write. With If-Match
			// the client's precondition no longer holds; without it, the
			// last writer wins, so read again and retry.
			if ifMatch != 0 {
				return preconditionFailed(ifMatch, -1)
			}
			if attempt < maxRetries {
				continue
			}
		}
		if err != nil {
			return err
		}
		a.writeWritten(w, r, status, changed(ch))
		return nil
	}
}

// permitStored checks op on the stored version a write replaces (a
// delete version by what it deleted; none, Version 0, passes). A write to
// a resource outside what the access reaches is 403: unlike a read, a
// write cannot be answered as if the id were free.
func (a *API) permitStored(ctx context.Context, op Op, res store.Resource, err error) error {
	if res.Version == 0 {
		return nil
	}
	err = a.permitVersion(ctx, op, res, err)
	if isNotVisible(err) {
		return refuse("the access token does not allow this %s: the stored resource is outside what its scopes reach", op)
	}
	return err
}

// checkBodyID enforces http.html#update: the body carries the id of the
// URL (anyID: or none, when a conditional update chose the target).
func checkBodyID(parsed *resource.Resource, id string, anyID bool) error {
	switch {
	case parsed.ID == "" && anyID:
	case parsed.ID == "":
		return outcome.New(http.StatusBadRequest, outcome.CodeRequired, "the resource must carry the id of the URL", parsed.Type+".id")
	case parsed.ID != id:
		return outcome.New(http.StatusBadRequest, outcome.CodeInvalid,
			fmt.Sprintf("the id in the body (%s) differs from the id in the URL (%s)", parsed.ID, id), parsed.Type+".id")
	}
	return nil
}

// updateChange reads the current version of parsed.Type/id and returns
// the change that writes the next one, with the status it answers: 201
// for update-as-create and resurrection, 200 otherwise. ifMatch (0: none)
// must name the current version.
func (a *API) updateChange(ctx context.Context, base string, parsed *resource.Resource, id string, ifMatch int64) (store.Change, int, error) {
	stored, deleted, err := a.currentVersion(ctx, parsed.Type, id)
	if err != nil {
		return store.Change{}, 0, err
	}
	current := stored.Version
	// Both ends of an update (SMART u, update-as-create included): the
	// stored version the compare-and-set replaces (a concurrent write makes
	// the commit fail and the caller retry) and the new body. A patient
	// may not move a resource out of their compartment, nor into another's.
	if err := a.permitStored(ctx, OpUpdate, stored, nil); err != nil {
		return store.Change{}, 0, err
	}
	if ifMatch != 0 && ifMatch != current {
		return store.Change{}, 0, preconditionFailed(ifMatch, current)
	}
	ch, err := a.stamp(base, parsed, id, current+1, store.MethodPut)
	if err != nil {
		return store.Change{}, 0, err
	}
	if err := a.permit(ctx, OpUpdate, ch.Type, ch.Body); err != nil {
		return store.Change{}, 0, err
	}
	status := http.StatusOK
	if current == 0 || deleted {
		status = http.StatusCreated
	}
	return ch, status, nil
}

// currentVersion is the latest version of typ/id (Version 0 when there
// is none) and whether it is a delete (a PUT after it resurrects the
// resource: 201).
func (a *API) currentVersion(ctx context.Context, typ, id string) (store.Resource, bool, error) {
	res, err := a.store.Read(ctx, typ, id)
	switch {
	case err == nil:
		return res, false, nil
	case errors.Is(err, store.ErrGone):
		return res, true, nil
	case errors.Is(err, store.ErrNotFound):
		return store.Resource{}, false, nil
	}
	return store.Resource{}, false, err
}

// ifMatchVersion reads an If-Match value (http.html#concurrency); 0 when
// absent.
func ifMatchVersion(h string) (int64, error) {
	if h == "" {
		return 0, nil
	}
	v, ok := parseETag(h)
	if !ok {
		return 0, outcome.Newf(http.StatusBadRequest, outcome.CodeValue, "If-Match must be a version ETag such as W/\"3\"")
	}
	return v, nil
}

func preconditionFailed(want, current int64) error {
	msg := fmt.Sprintf("If-Match W/\"%d\" does not match the current version", want)
	if current >= 0 {
		msg = fmt.Sprintf("If-Match W/\"%d\" does not match the current version W/\"%d\"", want, current)
	}
	return outcome.New(http.StatusPreconditionFailed, outcome.CodeConflict, msg)
}
