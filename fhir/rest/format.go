package rest

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-fhir/kiln/fhir/outcome"
)

const (
	fhirJSON  = "application/fhir+json"
	plainJSON = "application/json"
)

// responseFormat decides the response media type (http.html#mime-type):
// `_format` overrides Accept; only JSON is served, so a request that
// accepts nothing JSON-like gets 406 with an OperationOutcome saying so.
func responseFormat(r *http.Request) (string, error) {
	if f := r.URL.Query().Get("_format"); f != "" {
		switch strings.ToLower(strings.TrimSpace(strings.SplitN(f, ";", 2)[0])) {
		case "json", fhirJSON:
			return fhirJSON, nil
		case plainJSON, "text/json":
			return plainJSON, nil
		}
		return "", outcome.Newf(http.StatusNotAcceptable, outcome.CodeNotSupported,
			"_format %q is not supported: Kiln serves FHIR JSON only (json, application/fhir+json)", f)
	}
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return fhirJSON, nil
	}
	best, bestQ := "", -1.0
	for _, part := range strings.Split(strings.Join(accept, ","), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if qs, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(qs, 64); err == nil {
				q = v
			}
		}
		if v, ok := params["fhirversion"]; ok && !strings.HasPrefix(v, "4.0") {
			// http.html#version-parameter: Kiln speaks R4 only.
			return "", outcome.Newf(http.StatusNotAcceptable, outcome.CodeNotSupported,
				"fhirVersion %q is not supported: this server is FHIR R4 (4.0.1)", v)
		}
		var got string
		switch mt {
		case fhirJSON, "*/*", "application/*":
			got = fhirJSON
		case plainJSON, "text/json":
			got = plainJSON
		}
		if got != "" && q > 0 && q > bestQ {
			best, bestQ = got, q
		}
	}
	if best == "" {
		return "", outcome.New(http.StatusNotAcceptable, outcome.CodeNotSupported,
			"none of the accepted formats is available: Kiln serves FHIR JSON only (application/fhir+json, application/json)")
	}
	return best, nil
}

// checkContentType accepts JSON bodies (http.html#mime-type) and answers
// 415 for everything else, XML included.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil // many clients omit it; the body must still parse as JSON
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && (mt == fhirJSON || mt == plainJSON || mt == "text/json") {
		if v, ok := params["fhirversion"]; ok && !strings.HasPrefix(v, "4.0") {
			return outcome.Newf(http.StatusUnsupportedMediaType, outcome.CodeNotSupported,
				"fhirVersion %q is not supported: this server is FHIR R4 (4.0.1)", v)
		}
		return nil
	}
	return outcome.Newf(http.StatusUnsupportedMediaType, outcome.CodeNotSupported,
		"Content-Type %q is not supported: send FHIR JSON (application/fhir+json)", ct)
}

// writeJSON sends a FHIR JSON body with status, honouring _pretty.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	mt, err := responseFormat(r)
	if err != nil {
		mt = fhirJSON
	}
	if pretty(r) {
		var buf bytes.Buffer
		if json.Indent(&buf, body, "", "  ") == nil {
			body = buf.Bytes()
		}
	}
	h := w.Header()
	h.Set("Content-Type", mt+"; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

func pretty(r *http.Request) bool {
	v, err := strconv.ParseBool(r.URL.Query().Get("_pretty"))
	return err == nil && v
}

// httpDate formats t for Last-Modified (RFC 7232, second precision).
func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// etag is the weak ETag of a version (http.html#versioning).
func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

// parseETag reads a version from W/"n", "n" or n; ok is false otherwise.
func parseETag(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "W/")
	s = strings.Trim(s, `"`)
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v > 0
}
