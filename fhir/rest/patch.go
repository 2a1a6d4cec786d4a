package rest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/store"
)

// PATCH (http.html#patch): JSON Patch (RFC 6902, application/json-patch+json)
// or FHIRPath Patch (a Parameters resource, fhirpatch.html). The patched
// resource is then an update like any other: validated, stamped, written
// with compare-and-set on the version that was patched, same statuses.

const jsonPatchType = "application/json-patch+json"

// patchDoc is a parsed patch document.
type patchDoc interface {
	// apply changes res (a decoded resource) in place or returns a new root.
	apply(res map[string]any) (map[string]any, error)
}

// patch is PATCH [base]/[type]/[id].
func (a *API) patch(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	doc, err := patchBody(r)
	if err != nil {
		return err
	}
	return a.patchID(w, r, v["type"], v["id"], doc)
}

// conditionalPatch is PATCH [base]/[type]?criteria (http.html#patch: as a
// conditional update, except that no match is 404).
func (a *API) conditionalPatch(w http.ResponseWriter, r *http.Request) error {
	typ := mux.Vars(r)["type"]
	if r.URL.RawQuery == "" {
		return outcome.New(http.StatusMethodNotAllowed, outcome.CodeNotSupported,
			"PATCH needs an id ([type]/[id]) or search criteria ([type]?…)")
	}
	doc, err := patchBody(r)
	if err != nil {
		return err
	}
	found, err := a.matches(r.Context(), a.base(r), typ, r.URL.RawQuery)
	if err != nil {
		return err
	}
	switch len(found) {
	case 0:
		return outcome.New(http.StatusNotFound, outcome.CodeNotFound, "the conditional patch criteria match no resource")
	case 1:
		return a.patchID(w, r, typ, found[0].ID, doc)
	}
	return severalMatches(len(found), "conditional patch")
}

func (a *API) patchID(w http.ResponseWriter, r *http.Request, typ, id string, doc patchDoc) error {
	ifMatch, err := ifMatchVersion(r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		parsed, version, err := a.patched(r.Context(), typ, id, ifMatch, doc)
		if err != nil {
			return err
		}
		if err := a.permit(r.Context(), OpUpdate, typ, nil); err != nil {
			return err
		}
		// The change must replace exactly the version that was patched.
		ch, status, err := a.updateChange(r.Context(), a.indexBase(r), parsed, id, version)
		if err != nil {
			return err
		}
		err = a.store.Commit(r.Context(), ch)
		if errors.Is(err, store.ErrVersionConflict) {
			if ifMatch != 0 {
				return preconditionFailed(ifMatch, -1)
			}
			if attempt < maxRetries {
				continue // patch the newer version
			}
		}
		if err != nil {
			return err
		}
		a.writeWritten(w, r, status, changed(ch))
		return nil
	}
}

// patchBody reads a PATCH request body by its Content-Type.
func patchBody(r *http.Request) (patchDoc, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		mt = ""
	}
	switch mt {
	case jsonPatchType:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		return parseJSONPatch(body)
	case fhirJSON, plainJSON, "text/json":
		body, err := readBody(r)
		if err != nil {
			return nil, err
		}
		return parseFHIRPathPatch(body)
	}
	return nil, outcome.Newf(http.StatusUnsupportedMediaType, outcome.CodeNotSupported,
		"PATCH takes %s (JSON Patch) or %s (a FHIRPath Patch Parameters resource)", jsonPatchType, fhirJSON)
}

// patchFromEntry reads the patch of a bundle entry (http.html#transaction):
// a Binary holding a JSON Patch, or a FHIRPath Patch Parameters resource.
func patchFromEntry(raw json.RawMessage) (patchDoc, error) {
	var head struct {
		ResourceType string `json:"resourceType"`
		ContentType  string `json:"contentType"`
		Data         string `json:"data"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure, "the patch is not a JSON resource", "resource")
	}
	switch head.ResourceType {
	case "Parameters":
		return parseFHIRPathPatch(raw)
	case "Binary":
		if mt, _, _ := mime.ParseMediaType(head.ContentType); mt != jsonPatchType {
			return nil, outcome.New(http.StatusBadRequest, outcome.CodeNotSupported,
				"a Binary patch must have contentType "+jsonPatchType, "resource.contentType")
		}
		data, err := base64.StdEncoding.DecodeString(head.Data)
		if err != nil {
			return nil, outcome.New(http.StatusBadRequest, outcome.CodeValue, "Binary.data is not base64", "resource.data")
		}
		return parseJSONPatch(data)
	}
	return nil, outcome.New(http.StatusBadRequest, outcome.CodeNotSupported,
		"a PATCH entry's resource is a Parameters (FHIRPath Patch) or a Binary holding a JSON Patch", "resource")
}

// patched reads typ/id, applies doc and validates the result. It returns
// the result and the version it was patched from; ifMatch (0: none) must
// name that version (412 otherwise).
func (a *API) patched(ctx context.Context, typ, id string, ifMatch int64, doc patchDoc) (*resource.Resource, int64, error) {
	cur, err := a.store.Read(ctx, typ, id)
	if err != nil {
		return nil, 0, readError(err, cur)
	}
	if err := a.permit(ctx, OpUpdate, typ, cur.Body); err != nil {
		return nil, 0, err
	}
	if ifMatch != 0 && ifMatch != cur.Version {
		return nil, 0, preconditionFailed(ifMatch, cur.Version)
	}
	res, err := decodeObject(cur.Body)
	if err != nil {
		return nil, 0, err
	}
	before, _ := encodeJSON(res) // encoding/json sorts keys: comparable
	beforeText, _ := json.Marshal(res["text"])
	out, err := doc.apply(res)
	if err != nil {
		return nil, 0, err
	}
	if after, _ := encodeJSON(out); !bytes.Equal(after, before) {
		safeNarrative(out, beforeText)
	}
	if out["resourceType"] != typ || out["id"] != id {
		return nil, 0, outcome.New(http.StatusUnprocessableEntity, outcome.CodeInvalid,
			"a patch may not change resourceType or id")
	}
	body, err := encodeJSON(out)
	if err != nil {
		return nil, 0, err
	}
	parsed, err := resource.Parse(body)
	if err != nil {
		// The patch applied but left an invalid resource: the client's
		// patch is at fault, with the issues of any invalid update.
		oe := asOutcome(err)
		c := *oe
		c.Status = http.StatusUnprocessableEntity
		return nil, 0, &c
	}
	return parsed, cur.Version, nil
}

// safeNarrative drops a generated narrative the patch did not itself
// change (http.html#patch: the narrative must not be left clinically
// unsafe): it was generated from the data before the patch.
func safeNarrative(res map[string]any, before []byte) {
	text, ok := res["text"].(map[string]any)
	if !ok {
		return
	}
	after, _ := json.Marshal(text)
	if !bytes.Equal(after, before) {
		return // the patch wrote the narrative: the client vouches for it
	}
	if st := text["status"]; st == "generated" || st == "extensions" {
		delete(res, "text")
	}
}

func decodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// unprocessable is a patch that cannot be applied to this resource.
func unprocessable(format string, args ...any) error {
	return outcome.Newf(http.StatusUnprocessableEntity, outcome.CodeProcessing, format, args...)
}
