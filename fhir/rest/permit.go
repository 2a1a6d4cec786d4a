package rest

import (
	"context"

	"github.com/kiln-fhir/kiln/fhir/search"
)

// Op is what a request does to a resource type, in SMART v2 letters.
type Op byte

const (
	OpCreate Op = 'c'
	OpRead   Op = 'r'
	OpUpdate Op = 'u'
	OpDelete Op = 'd'
	OpSearch Op = 's'
)

// permit reports whether the access bound to ctx may do op on typ; body is
// the resource concerned when there is one (read result, write payload, the
// current version before an update or delete), nil otherwise. nil: allowed.
// The error is an *outcome.Error (401 or 403) ready to return.
//
// This stub allows everything: it is replaced by SMART enforcement.
func (a *API) permit(ctx context.Context, op Op, typ string, body []byte) error {
	return nil
}

// confine returns a clause the store must AND into any search of typ so that
// only resources the access may see match (nil: no restriction).
//
// This stub restricts nothing: it is replaced by SMART enforcement.
func (a *API) confine(ctx context.Context, typ string) (*search.Clause, error) {
	return nil, nil
}
