package rest

import (
	"context"
	"fmt"
	"net/http"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/fhir/search"
	"github.com/kiln-fhir/kiln/store"
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

// stamp renders version of parsed as stored JSON and computes its search
// index entries: the Change that writes it.
// base is indexBase of the request.
func (a *API) stamp(base string, parsed *resource.Resource, id string, version int64, method store.Method) (store.Change, error) {
	now := a.now()
	body, err := parsed.Stamp(id, version, now)
	if err != nil {
		return store.Change{}, err
	}
	if err := a.checkSearchParameter(context.Background(), parsed.Type, id, body); err != nil {
		return store.Change{}, err
	}
	var index []search.Entry
	if v := parsed.Decoded(); v != nil {
		index, err = a.indexRegistry().ExtractValueBase(parsed.Type, v, base)
	} else {
		index, err = a.indexRegistry().ExtractBase(parsed.Type, body, base)
	}
	if err != nil {
		// Only a custom SearchParameter whose expression fails on this
		// resource gets here: the write is refused rather than stored
		// unsearchable.
		return store.Change{}, outcome.New(http.StatusUnprocessableEntity, outcome.CodeProcessing,
			"the resource could not be indexed: "+err.Error())
	}
	return store.Change{Type: parsed.Type, ID: id, Version: version, LastUpdated: now, Method: method, Body: body, Index: index}, nil
}

// indexBase is the base that index extraction resolves absolute references
// against: "" when configured (the registry already knows it), else the
// one this request reached.
func (a *API) indexBase(r *http.Request) string {
	if a.cfg.BaseURL != "" {
		return ""
	}
	return a.base(r)
}
