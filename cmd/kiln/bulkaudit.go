package main

import (
	"net/http"

	"github.com/kiln-fhir/kiln/fhir/bulk"
)

// Identify names the client of a valid token that Export refused (403:
// no scope an export can use), so that the refused kick-off, poll or
// download is audited like the others (bulk.Identifier).
func (a exportAuthorizer) Identify(r *http.Request) (bulk.Grant, bool) {
	g, err := a.srv.Authenticate(r)
	if err != nil || g.ClientID == "" {
		return bulk.Grant{}, false
	}
	return bulk.Grant{Client: g.ClientID, ClientID: g.ClientID, FHIRUser: g.FHIRUser, Patient: g.Patient}, true
}

var _ bulk.Identifier = exportAuthorizer{}
