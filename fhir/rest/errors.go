package rest

import (
	"context"
	"errors"
	"net/http"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/store"
)

// asOutcome maps any error a handler returns to the FHIR error the client
// sees. It is the only place store sentinels meet HTTP statuses.
func asOutcome(err error) *outcome.Error {
	var oe *outcome.Error
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &oe):
		return oe
	case errors.As(err, &maxErr):
		return outcome.Newf(http.StatusRequestEntityTooLarge, outcome.CodeTooCostly,
			"request body exceeds the limit of %d bytes", maxErr.Limit).Wrap(err)
	case errors.Is(err, store.ErrTooLarge):
		return outcome.New(http.StatusRequestEntityTooLarge, outcome.CodeTooCostly,
			"the resource is larger than the store can hold").Wrap(err)
	case errors.Is(err, store.ErrNotFound):
		return outcome.New(http.StatusNotFound, outcome.CodeNotFound, "resource not found").Wrap(err)
	case errors.Is(err, store.ErrGone):
		return outcome.New(http.StatusGone, outcome.CodeDeleted, "resource deleted").Wrap(err)
	case errors.Is(err, store.ErrVersionConflict):
		return outcome.New(http.StatusConflict, outcome.CodeConflict, "concurrent update: retry with the current version").Wrap(err)
	case errors.Is(err, store.ErrUnsupported):
		// Kept for the client: it names the parameter and what is missing.
		return outcome.New(http.StatusBadRequest, outcome.CodeNotSupported, "this search is not supported: "+err.Error()).Wrap(err)
	case errors.Is(err, store.ErrNoTransactions):
		// The deployment cannot apply several changes atomically (MongoDB
		// without a replica set): refused whole rather than half-applied.
		return outcome.New(http.StatusNotImplemented, outcome.CodeNotSupported,
			"this server's database cannot apply several changes atomically (no multi-document transactions): "+
				"send the changes one by one, or run the database as a replica set").Wrap(err)
	case errors.Is(err, store.ErrInvalidCursor):
		return outcome.New(http.StatusBadRequest, outcome.CodeValue, "invalid or expired paging cursor").Wrap(err)
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return outcome.New(http.StatusServiceUnavailable, outcome.CodeTransient, "storage temporarily unavailable").
			With("Retry-After", "1").Wrap(err)
	case errors.Is(err, context.Canceled):
		// The client went away; the status is for logs and metrics only.
		return outcome.New(499, outcome.CodeTimeout, "request cancelled").Wrap(err)
	}
	return outcome.As(err)
}

// fail writes err as an OperationOutcome and records it for the request
// log (codes only: diagnostics may echo patient data).
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	oe := asOutcome(err)
	noteError(r, oe, err)
	if oe.Status >= 500 && oe.Status != http.StatusServiceUnavailable {
		// Unknown errors are logged with their cause (no request data)
		// and answered without revealing it.
		a.cfg.Logger.ErrorContext(r.Context(), "request failed", "request_id", requestID(r), "error", err.Error())
	}
	outcome.Write(w, oe)
}

// checkType answers 404 for anything that is not an R4 resource type
// (http.html: "resource type not supported"), case-sensitively.
func checkType(typ string) error {
	if !resource.IsType(typ) {
		return outcome.Newf(http.StatusNotFound, outcome.CodeNotSupported, "unknown resource type %q", typ)
	}
	return nil
}
