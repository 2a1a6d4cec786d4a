package rest

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// vread is GET [base]/[type]/[id]/_history/[vid] (http.html#vread).
func (a *API) vread(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	vid, err := strconv.ParseInt(v["vid"], 10, 64)
	if err != nil || vid < 1 {
		return outcome.Newf(http.StatusNotFound, outcome.CodeNotFound, "no version %q: version ids are positive integers", v["vid"])
	}
	if err := a.permit(r.Context(), OpRead, v["type"], nil); err != nil {
		return err
	}
	res, err := a.store.VRead(r.Context(), v["type"], v["id"], vid)
	// A version that was outside what the access sees is 404, like one
	// that never existed, even when the resource is visible now.
	if err := a.permitVersion(r.Context(), OpRead, res, err); err != nil {
		return err
	}
	if err != nil {
		return readError(err, res)
	}
	return writeResource(w, r, res)
}
