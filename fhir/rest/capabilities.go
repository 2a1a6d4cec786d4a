package rest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/kiln-fhir/kiln/fhir/resource"
)

// capabilities is the CapabilityStatement, rendered once at start from the
// interaction table (capabilitystatement.html).
type capabilities struct {
	body []byte
	etag string
}

func newCapabilities(version string, now time.Time) capabilities {
	if version == "" {
		version = "dev"
	}
	var typeCodes, systemCodes []map[string]string
	for _, in := range interactions {
		switch in.level {
		case typeLevel, instanceLevel:
			typeCodes = append(typeCodes, map[string]string{"code": in.code})
		case systemLevel:
			systemCodes = append(systemCodes, map[string]string{"code": in.code})
		}
	}
	var resources []map[string]any
	for _, t := range resource.Types() {
		resources = append(resources, map[string]any{
			"type":        t,
			"profile":     "http://hl7.org/fhir/StructureDefinition/" + t,
			"interaction": typeCodes,
			// Every write keeps the previous version; If-Match is honoured
			// but not required.
			"versioning":        "versioned-update",
			"readHistory":       true,
			"updateCreate":      true,
			"conditionalCreate": false,
			"conditionalRead":   "full-support",
			"conditionalUpdate": false,
			"conditionalDelete": "not-supported",
		})
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         now.UTC().Format(time.RFC3339),
		"publisher":    "Kiln",
		"kind":         "instance",
		"software":     map[string]string{"name": "Kiln", "version": version},
		"implementation": map[string]string{
			"description": "Kiln FHIR R4 server",
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"json", "application/fhir+json", "application/json"},
		"rest": []map[string]any{{
			"mode":        "server",
			"resource":    resources,
			"interaction": systemCodes,
		}},
	}
	body, err := json.Marshal(cs)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(body)
	return capabilities{body: body, etag: `W/"` + hex.EncodeToString(sum[:8]) + `"`}
}

// metadata is GET [base]/metadata (http.html#capabilities). It needs no
// authentication.
func (a *API) metadata(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("ETag", a.caps.etag)
	if r.Header.Get("If-None-Match") == a.caps.etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	writeJSON(w, r, http.StatusOK, a.caps.body)
	return nil
}
