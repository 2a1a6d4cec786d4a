package rest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/fhir/search"
)

// capabilities is the CapabilityStatement, rendered once at start from the
// interaction table (capabilitystatement.html).
type capabilities struct {
	body []byte
	etag string
}

// OAuthURIs are the SMART authorization server's endpoints (absolute).
type OAuthURIs struct {
	Authorize, Token, Introspect, Revoke string
}

// security is CapabilityStatement.rest.security for a SMART server
// (app-launch.html#smart-on-fhir-oauth-authorization-endpoints-and-capabilities:
// the oauth-uris extension; the restful-security-service code SMART-on-FHIR).
func (o *OAuthURIs) security() map[string]any {
	var ext []map[string]string
	for _, e := range []struct{ name, uri string }{
		{"authorize", o.Authorize}, {"token", o.Token}, {"introspect", o.Introspect}, {"revoke", o.Revoke},
	} {
		if e.uri != "" {
			ext = append(ext, map[string]string{"url": e.name, "valueUri": e.uri})
		}
	}
	return map[string]any{
		"cors": true,
		"service": []map[string]any{{
			"coding": []map[string]string{{
				"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
				"code":   "SMART-on-FHIR",
			}},
			"text": "OAuth2 using SMART App Launch 2.0 (/.well-known/smart-configuration)",
		}},
		"extension": []map[string]any{{
			"url":       "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			"extension": ext,
		}},
	}
}

func newCapabilities(cfg Config, now time.Time, reg *search.Registry) capabilities {
	version, oauth := cfg.Version, cfg.OAuth
	if version == "" {
		version = "dev"
	}
	var typeCodes, systemCodes []map[string]string
	listed := map[string]bool{}
	for _, in := range interactions {
		if listed[in.code] {
			continue // one code, several routes (GET and POST search)
		}
		listed[in.code] = true
		switch in.level {
		case typeLevel, instanceLevel:
			typeCodes = append(typeCodes, map[string]string{"code": in.code})
		case systemLevel:
			systemCodes = append(systemCodes, map[string]string{"code": in.code})
		}
	}
	var notServed []string
	for _, u := range reg.Unsupported() {
		notServed = append(notServed, u.Name+": "+u.Reason)
	}
	var resources []map[string]any
	for _, t := range resource.Types() {
		var params []map[string]string
		var includes []string
		for _, p := range reg.Params(t) {
			params = append(params, map[string]string{"name": p.Name, "definition": p.URL, "type": string(p.Type)})
			if p.Type == search.Reference {
				includes = append(includes, t+":"+p.Name)
			}
		}
		res := map[string]any{
			"searchParam":      params,
			"searchInclude":    append([]string{"*"}, includes...),
			"searchRevInclude": revIncludes(reg, t),
			"type":             t,
			"profile":          "http://hl7.org/fhir/StructureDefinition/" + t,
			"interaction":      typeCodes,
			// Every write keeps the previous version; If-Match is honoured
			// but not required.
			"versioning":        "versioned-update",
			"readHistory":       true,
			"updateCreate":      true,
			"conditionalCreate": true,
			"conditionalRead":   "full-support",
			"conditionalUpdate": true,
			"conditionalDelete": "single",
		}
		if ops := operationEntries(t, cfg); ops != nil {
			res["operation"] = ops
		}
		if ps := usCoreProfiles[t]; ps != nil {
			res["supportedProfile"] = ps
		}
		resources = append(resources, res)
	}
	rest := map[string]any{
		"mode":        "server",
		"resource":    resources,
		"interaction": systemCodes,
		"searchParam": []map[string]string{{
			"name": "_list", "type": "special",
			"documentation": "search.html#list: the resources a stored List holds (_list=[List id]); " +
				"functional lists such as $current-allergies are not supported and answer 400",
		}},
	}
	if ops := operationEntries("", cfg); ops != nil {
		rest["operation"] = ops
	}
	if oauth != nil {
		rest["security"] = oauth.security()
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
		"description": "Search parameters not served: " + strings.Join(notServed, "; ") + ". " + searchNotes,
		"fhirVersion": "4.0.1",
		"format":      []string{"json", "application/fhir+json", "application/json"},
		"rest":        []map[string]any{rest},
	}
	cs["instantiates"] = append([]string{usCoreServer}, cfg.Instantiates...)
	body, err := json.Marshal(cs)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(body)
	return capabilities{body: body, etag: `W/"` + hex.EncodeToString(sum[:8]) + `"`}
}

// revIncludes lists Type:param for every reference parameter of any type
// that may point at typ.
func revIncludes(reg *search.Registry, typ string) []string {
	var out []string
	for _, t := range reg.Types() {
		for _, p := range reg.Params(t) {
			if p.Type == search.Reference && slices.Contains(p.Targets, typ) {
				out = append(out, t+":"+p.Name)
			}
		}
	}
	return out
}

// metadata is GET [base]/metadata (http.html#capabilities). It needs no
// authentication.
func (a *API) metadata(w http.ResponseWriter, r *http.Request) error {
	caps := a.capabilities()
	w.Header().Set("ETag", caps.etag)
	if r.Header.Get("If-None-Match") == caps.etag {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	writeJSON(w, r, http.StatusOK, caps.body)
	return nil
}

// searchNotes says how Kiln answers what search.html leaves to the server.
const searchNotes = "Token :in and :not-in expand ValueSets stored on this server (by url or ValueSet/id; " +
	"an unknown ValueSet is a 400), token :above and :below use the concept hierarchy of a stored CodeSystem " +
	"(a code system not stored is a 400); an expansion is bounded at 1000 codes (422 beyond). " +
	"_list takes the id of a stored List; functional lists ($current-allergies, …) are refused with 400. " +
	"GET [compartment]/[id]/* searches every type of the compartment."
