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
	res, err := a.store.VRead(r.Context(), v["type"], v["id"], vid)
	if err != nil {
		return readError(err, res)
	}
	return writeResource(w, r, res)
}
