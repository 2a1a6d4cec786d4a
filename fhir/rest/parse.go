package rest

import (
	"fmt"
	"net/http"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
)

// parseBody reads and validates a request body as a resource of type typ.
func (a *API) parseBody(r *http.Request, typ string) (*resource.Resource, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	parsed, err := resource.Parse(body)
	if err != nil {
		return nil, err
	}
	if parsed.Type != typ {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeInvalid,
			fmt.Sprintf("resourceType %q does not match the type in the URL (%s)", parsed.Type, typ), "resourceType")
	}
	return parsed, nil
}
