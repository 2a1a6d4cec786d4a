package rest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-fhir/kiln/store"
)

// bundle is a Bundle the server assembles (history, later searchset and
// responses). Resources are embedded as the stored bytes.
type bundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id"`
	Meta         bundleMeta    `json:"meta"`
	Type         string        `json:"type"`
	Total        *int          `json:"total,omitempty"`
	Link         []bundleLink  `json:"link,omitempty"`
	Entry        []bundleEntry `json:"entry,omitempty"`
}

type bundleMeta struct {
	LastUpdated string `json:"lastUpdated"`
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *entrySearch    `json:"search,omitempty"`
	Request  *entryRequest   `json:"request,omitempty"`
	Response *entryResponse  `json:"response,omitempty"`
}

type entrySearch struct {
	Mode string `json:"mode"`
}

type entryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type entryResponse struct {
	Status       string `json:"status"`
	Location     string `json:"location,omitempty"`
	Etag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

func newBundle(typ string, now time.Time) *bundle {
	return &bundle{
		ResourceType: "Bundle",
		ID:           uuid.NewString(),
		Meta:         bundleMeta{LastUpdated: now.UTC().Format(time.RFC3339Nano)},
		Type:         typ,
	}
}

// historyEntry renders one version as a history bundle entry
// (http.html#history: request and response, no resource for deletes).
func historyEntry(base string, v store.Resource) bundleEntry {
	e := bundleEntry{
		FullURL: base + "/" + v.Type + "/" + v.ID,
		Response: &entryResponse{
			Etag:         etag(v.Version),
			LastModified: v.LastUpdated.UTC().Format(time.RFC3339Nano),
		},
	}
	switch v.Method {
	case store.MethodPost:
		e.Request = &entryRequest{Method: "POST", URL: v.Type}
		e.Response.Status = "201 Created"
		e.Response.Location = v.Type + "/" + v.ID + "/_history/" + strconv.FormatInt(v.Version, 10)
	case store.MethodPut:
		e.Request = &entryRequest{Method: "PUT", URL: v.Type + "/" + v.ID}
		e.Response.Status = "200 OK"
		if v.Version == 1 {
			e.Response.Status = "201 Created"
		}
		e.Response.Location = v.Type + "/" + v.ID + "/_history/" + strconv.FormatInt(v.Version, 10)
	case store.MethodDelete:
		e.Request = &entryRequest{Method: "DELETE", URL: v.Type + "/" + v.ID}
		e.Response.Status = "204 No Content"
	}
	if !v.Deleted() {
		e.Resource = v.Body
	}
	return e
}

// write sends the bundle.
func (b *bundle) write(w http.ResponseWriter, r *http.Request) error {
	for _, e := range b.Entry {
		touch(r.Context(), e.Resource)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // links keep their '&'; narrative is already escaped JSON
	if err := enc.Encode(b); err != nil {
		return err
	}
	writeJSON(w, r, http.StatusOK, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return nil
}

// pageURL is the URL of the same interaction with query q.
func pageURL(base string, r *http.Request, q url.Values) string {
	u := base + r.URL.Path
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	return u
}
