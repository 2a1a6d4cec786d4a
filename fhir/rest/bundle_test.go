package rest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestBundleJSON: the hand-written Bundle encoder writes exactly what
// encoding/json writes for the same value (HTML not escaped), for every
// field set or left out and for strings that need escaping.
func TestBundleJSON(t *testing.T) {
	total, zero := 7, 0
	odd := "a\"b\\c\n\r\t\b\f\x01\x1f<&>é\u2028\u2029\xff😀"
	res := json.RawMessage(`{"resourceType":"Patient","id":"p1","name":[{"family":"O'Brien <x>"}]}`)
	cases := map[string]*bundle{
		"empty":      newBundle("searchset", time.Unix(0, 0)),
		"total zero": {ResourceType: "Bundle", ID: "x", Type: "searchset", Total: &zero},
		"links and entries": {
			ResourceType: "Bundle", ID: "id", Meta: bundleMeta{LastUpdated: "2020-01-01T00:00:00Z"}, Type: "searchset", Total: &total,
			Link: []bundleLink{{"self", "http://x/Patient?name=a&b=c"}, {"next", odd}},
			Entry: []bundleEntry{
				{FullURL: "http://x/Patient/p1", Resource: res, Search: &entrySearch{Mode: "match"}},
				{FullURL: odd, Search: &entrySearch{Mode: "outcome"}},
				{},
			},
		},
		"history": {
			ResourceType: "Bundle", ID: odd, Type: "history",
			Entry: []bundleEntry{
				{FullURL: "u", Resource: res, Request: &entryRequest{"PUT", "Patient/p1"},
					Response: &entryResponse{Status: "200 OK", Location: "Patient/p1/_history/2", Etag: `W/"2"`, LastModified: "t"}},
				{Request: &entryRequest{"DELETE", "Patient/p1"}, Response: &entryResponse{Status: "204 No Content"}},
				{Response: &entryResponse{Status: "201 Created", Etag: `W/"1"`}},
			},
		},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) { checkEncoder(t, b, b.appendJSON) })
	}
	// A field added to these types must be added to the encoder too.
	checkFieldCounts(t, map[reflect.Type]int{
		reflect.TypeOf(bundle{}): 7, reflect.TypeOf(bundleEntry{}): 5, reflect.TypeOf(bundleLink{}): 2,
		reflect.TypeOf(entrySearch{}): 1, reflect.TypeOf(entryRequest{}): 2, reflect.TypeOf(entryResponse{}): 4,
		reflect.TypeOf(bundleMeta{}): 1,
	})
}

// checkEncoder fails t unless appendJSON writes exactly what
// encoding/json writes for v (HTML not escaped).
func checkEncoder(t *testing.T, v any, appendJSON func([]byte) []byte) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	want := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if got := appendJSON(nil); !bytes.Equal(got, want) {
		t.Errorf("appendJSON:\n got %s\nwant %s", got, want)
	}
}

// checkFieldCounts fails t when a type has another number of fields than
// its hand-written encoder writes.
func checkFieldCounts(t *testing.T, counts map[reflect.Type]int) {
	t.Helper()
	for typ, n := range counts {
		if typ.NumField() != n {
			t.Errorf("%v has %d fields; appendJSON writes %d", typ, typ.NumField(), n)
		}
	}
}

// TestBundleSizeHint: a search page's JSON fits the buffer sizeHint
// sizes (no growth and copy of every resource while it is written), in
// every shape the server writes without escapes to expand.
func TestBundleSizeHint(t *testing.T) {
	total := 3
	res := json.RawMessage(`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"}}`)
	for _, n := range []int{0, 1, 50, 1000} {
		b := newBundle("searchset", time.Unix(0, 0))
		b.Total = &total
		b.Link = []bundleLink{{"self", "http://localhost:8080/fhir/Observation?patient=p1&category=laboratory"},
			{"next", "http://localhost:8080/fhir/Observation?patient=p1&category=laboratory&_page=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"}}
		for i := range n {
			e := bundleEntry{FullURL: "http://localhost:8080/fhir/Observation/0123456789abcdef0123456789abcdef", Resource: res,
				Search: &entrySearch{Mode: "match"}}
			if i%2 == 1 {
				e.Response = &entryResponse{Status: "201 Created", Location: "Observation/o1/_history/1", Etag: `W/"1"`,
					LastModified: "2024-01-01T00:00:00.000000Z"}
				e.Request = &entryRequest{"POST", "Observation"}
			}
			b.Entry = append(b.Entry, e)
		}
		if got, hint := len(b.appendJSON(nil)), b.sizeHint(); got > hint {
			t.Errorf("%d entries: %d bytes, sizeHint %d", n, got, hint)
		}
	}
}
