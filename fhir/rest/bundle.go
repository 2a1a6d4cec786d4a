package rest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

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
	writeJSON(w, r, http.StatusOK, b.appendJSON(make([]byte, 0, b.sizeHint())))
	return nil
}

// sizeHint is about the length of the bundle's JSON, a little more, so
// that appendJSON fills one buffer instead of growing it (and copying
// every resource again) as a page of resources goes in.
func (b *bundle) sizeHint() int {
	n := 256
	for _, l := range b.Link {
		n += len(l.URL) + 32
	}
	for i := range b.Entry {
		n += len(b.Entry[i].Resource) + len(b.Entry[i].FullURL) + 192
	}
	return n
}

// appendJSON appends the bundle's JSON to dst: what encoding/json would
// write (HTML not escaped), but with each resource's stored bytes copied
// as they are. encoding/json validates and compacts every RawMessage,
// which for a search page is a second scan of every resource the store
// already holds as compact JSON; TestBundleJSON keeps the two equal.
func (b *bundle) appendJSON(dst []byte) []byte {
	dst = appendBundleHead(dst, b.ResourceType, b.ID, b.Meta.LastUpdated, b.Type)
	if b.Total != nil {
		dst = append(dst, `,"total":`...)
		dst = strconv.AppendInt(dst, int64(*b.Total), 10)
	}
	if len(b.Link) > 0 {
		dst = append(dst, `,"link":[`...)
		for i, l := range b.Link {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"relation":`...)
			dst = appendString(dst, l.Relation)
			dst = append(dst, `,"url":`...)
			dst = appendString(dst, l.URL)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	if len(b.Entry) > 0 {
		dst = append(dst, `,"entry":[`...)
		for i := range b.Entry {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = b.Entry[i].appendJSON(dst)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendBundleHead opens a Bundle's JSON with the members every Bundle
// Kiln writes starts with, in encoding/json's order for bundle and
// txResponseBundle.
func appendBundleHead(dst []byte, resourceType, id, lastUpdated, typ string) []byte {
	dst = append(dst, `{"resourceType":`...)
	dst = appendString(dst, resourceType)
	dst = append(dst, `,"id":`...)
	dst = appendString(dst, id)
	dst = append(dst, `,"meta":{"lastUpdated":`...)
	dst = appendString(dst, lastUpdated)
	dst = append(dst, `},"type":`...)
	return appendString(dst, typ)
}

func (e *bundleEntry) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	comma := false
	field := func(name string) {
		if comma {
			dst = append(dst, ',')
		}
		comma = true
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, `":`...)
	}
	if e.FullURL != "" {
		field("fullUrl")
		dst = appendString(dst, e.FullURL)
	}
	if len(e.Resource) > 0 {
		field("resource")
		dst = append(dst, e.Resource...)
	}
	if e.Search != nil {
		field("search")
		dst = append(dst, `{"mode":`...)
		dst = appendString(dst, e.Search.Mode)
		dst = append(dst, '}')
	}
	if e.Request != nil {
		field("request")
		dst = append(dst, `{"method":`...)
		dst = appendString(dst, e.Request.Method)
		dst = append(dst, `,"url":`...)
		dst = appendString(dst, e.Request.URL)
		dst = append(dst, '}')
	}
	if x := e.Response; x != nil {
		field("response")
		dst = append(dst, `{"status":`...)
		dst = appendString(dst, x.Status)
		for _, f := range [...]struct{ name, v string }{{"location", x.Location}, {"etag", x.Etag}, {"lastModified", x.LastModified}} {
			if f.v != "" {
				dst = append(dst, `,"`...)
				dst = append(dst, f.name...)
				dst = append(dst, `":`...)
				dst = appendString(dst, f.v)
			}
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendString appends s as a JSON string, escaped as encoding/json does
// with HTML escaping off.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, `\u00`...)
				dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			switch r {
			case utf8.RuneError:
				dst = append(dst, `\ufffd`...)
			default:
				dst = append(dst, `\u202`...)
				dst = append(dst, hexDigits[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// pageURL is the URL of the same interaction with query q.
func pageURL(base string, r *http.Request, q url.Values) string {
	u := base + r.URL.Path
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	return u
}
