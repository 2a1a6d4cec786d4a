package rest

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/store"
)

// TestStoreErrorsAsOutcome: each store sentinel, however wrapped by a
// backend, becomes its HTTP status and issue code in the one place that
// maps them.
func TestStoreErrorsAsOutcome(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{store.ErrNotFound, http.StatusNotFound, outcome.CodeNotFound},
		{store.ErrGone, http.StatusGone, outcome.CodeDeleted},
		{&store.ConflictError{Index: 0, Current: 2}, http.StatusConflict, outcome.CodeConflict},
		{store.ErrUnsupported, http.StatusBadRequest, outcome.CodeNotSupported},
		{store.ErrInvalidCursor, http.StatusBadRequest, outcome.CodeValue},
		{store.ErrUnavailable, http.StatusServiceUnavailable, outcome.CodeTransient},
		{context.DeadlineExceeded, http.StatusServiceUnavailable, outcome.CodeTransient},
		// A deployment without multi-document transactions refuses a
		// multi-change commit whole: the server cannot do it (501).
		{store.ErrNoTransactions, http.StatusNotImplemented, outcome.CodeNotSupported},
		{store.ErrTooLarge, http.StatusRequestEntityTooLarge, outcome.CodeTooCostly},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			oe := asOutcome(fmt.Errorf("backend: commit of 3 changes: %w", tc.err))
			if oe.Status != tc.status || len(oe.Issues) == 0 || oe.Issues[0].Code != tc.code {
				t.Errorf("status %d issues %+v, want %d %s", oe.Status, oe.Issues, tc.status, tc.code)
			}
		})
	}
}
