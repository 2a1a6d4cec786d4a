package rest

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/store"
)

// base is the service base URL without a trailing slash: the configured
// one, or the one this request reached.
func (a *API) base(r *http.Request) string {
	if a.cfg.BaseURL != "" {
		return strings.TrimRight(a.cfg.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// versionHeaders sets ETag and Last-Modified for a version
// (http.html#versioning).
func versionHeaders(h http.Header, res store.Resource) {
	h.Set("ETag", etag(res.Version))
	h.Set("Last-Modified", httpDate(res.LastUpdated))
}

// preferReturn reads Prefer: return=… (http.html#ops); "" when absent.
func preferReturn(r *http.Request) string {
	for _, v := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			if strings.EqualFold(k, "return") {
				return strings.Trim(strings.TrimSpace(val), `"`)
			}
		}
	}
	return ""
}

// writeWritten answers a successful create or update: Location, ETag and
// Last-Modified, and the body Prefer asks for (the resource by default).
func (a *API) writeWritten(w http.ResponseWriter, r *http.Request, status int, res store.Resource) {
	h := w.Header()
	touch(r.Context(), res.Body)
	info(r).target = res.Type + "/" + res.ID + "/_history/" + strconv.FormatInt(res.Version, 10)
	versionHeaders(h, res)
	h.Set("Location", a.base(r)+"/"+res.Type+"/"+res.ID+"/_history/"+strconv.FormatInt(res.Version, 10))
	switch preferReturn(r) {
	case "minimal":
		w.WriteHeader(status)
	case "OperationOutcome":
		verb := "updated"
		if status == http.StatusCreated {
			verb = "created"
		}
		writeJSON(w, r, status, outcome.Info(res.Type+"/"+res.ID+" "+verb+" (version "+strconv.FormatInt(res.Version, 10)+")"))
	default:
		writeJSON(w, r, status, res.Body)
	}
}

// writeResource answers a read or vread with the stored bytes, subsetted
// when _summary or _elements ask for it.
func writeResource(w http.ResponseWriter, r *http.Request, res store.Resource) error {
	body, err := subset(r, res.Body)
	if err != nil {
		return err
	}
	touch(r.Context(), res.Body)
	versionHeaders(w.Header(), res)
	writeJSON(w, r, http.StatusOK, body)
	return nil
}

// subset applies _summary and _elements (search.html#summary,
// search.html#elements) to a stored resource.
func subset(r *http.Request, body []byte) ([]byte, error) {
	q := r.URL.Query()
	if s := q.Get("_summary"); s != "" {
		switch s {
		case "true", "text", "data", "false":
		case "count":
			return nil, outcome.New(http.StatusBadRequest, outcome.CodeNotSupported, "_summary=count applies to searches, not to reads", "_summary")
		default:
			return nil, outcome.Newf(http.StatusBadRequest, outcome.CodeValue, "_summary must be one of true, text, data, count, false")
		}
		if q.Get("_elements") != "" {
			return nil, outcome.New(http.StatusBadRequest, outcome.CodeInvalid, "_summary and _elements cannot be combined")
		}
		return resource.Summary(body, s)
	}
	if e := q.Get("_elements"); e != "" {
		var names []string
		for _, n := range strings.Split(strings.Join(q["_elements"], ","), ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		return resource.Elements(body, names)
	}
	return body, nil
}

// readBody reads a request body within the configured limit (413 above it).
func readBody(r *http.Request) ([]byte, error) {
	if err := checkContentType(r); err != nil {
		return nil, err
	}
	return io.ReadAll(r.Body)
}
