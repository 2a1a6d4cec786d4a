package apitest

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// testHistoryList: history's _list (http.html#history, A-HI-04) keeps
// the versions of the resources a List holds, at every level: every
// version of an item "Type/id", the one version of an item
// "Type/id/_history/n", nothing of a removed entry (entry.deleted). It
// pages like any history, may appear once, and an unknown List is a 400.
func testHistoryList(t *testing.T, c *Client) {
	basic := func(id, text string) []byte {
		return fmt.Appendf(nil, `{"resourceType":"Basic","id":%q,"code":{"text":%q}}`, id, text)
	}
	put := func(typ, id string, body []byte, status int) {
		t.Helper()
		expectStatus(t, c.Do("PUT", "/"+typ+"/"+id, body), status, "PUT "+typ+"/"+id)
	}
	// b1: two versions, listed whole; b2: two versions, version 1 listed;
	// b3: listed but removed from the list; b4: not listed; a Patient.
	b1, b2, b3, b4, p := uniqueID("hl1"), uniqueID("hl2"), uniqueID("hl3"), uniqueID("hl4"), uniqueID("hlp")
	for _, id := range []string{b1, b2, b3, b4} {
		put("Basic", id, basic(id, "v1"), 201)
	}
	put("Basic", b1, basic(b1, "v2"), 200)
	put("Basic", b2, basic(b2, "v2"), 200)
	put("Patient", p, fmt.Appendf(nil, `{"resourceType":"Patient","id":%q}`, p), 201)
	list := uniqueID("hlist")
	put("List", list, fmt.Appendf(nil, `{"resourceType":"List","id":%q,"status":"current","mode":"working","entry":[
		{"item":{"reference":"Basic/%s"}},
		{"item":{"reference":"Basic/%s/_history/1"}},
		{"deleted":true,"item":{"reference":"Basic/%s"}},
		{"item":{"reference":"Patient/%s"}},
		{"item":{"display":"no reference"}}]}`, list, b1, b2, b3, p), 201)

	versions := func(b historyBundle) []string {
		var out []string
		for _, e := range b.Entry {
			// fullUrl ends with Type/id; the etag names the version.
			out = append(out, lastTwo(e.FullURL)+" "+e.Response.Etag)
		}
		slices.Sort(out)
		return out
	}
	v := func(typ, id, etag string) string { return typ + "/" + id + ` W/"` + etag + `"` }
	for _, tc := range []struct {
		name, path string
		want       []string
	}{
		{"type", "/Basic/_history?_list=" + list,
			[]string{v("Basic", b1, "1"), v("Basic", b1, "2"), v("Basic", b2, "1")}},
		{"system", "/_history?_list=" + list,
			[]string{v("Basic", b1, "1"), v("Basic", b1, "2"), v("Basic", b2, "1"), v("Patient", p, "1")}},
		{"instance in the list", "/Basic/" + b1 + "/_history?_list=" + list,
			[]string{v("Basic", b1, "1"), v("Basic", b1, "2")}},
		{"instance, one version listed", "/Basic/" + b2 + "/_history?_list=" + list,
			[]string{v("Basic", b2, "1")}},
		{"instance removed from the list", "/Basic/" + b3 + "/_history?_list=" + list, nil},
		{"instance not in the list", "/Basic/" + b4 + "/_history?_list=" + list, nil},
		{"type with nothing listed", "/Observation/_history?_list=" + list, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slices.Sort(tc.want)
			b := getHistory(t, c, tc.path)
			if got := versions(b); !slices.Equal(got, tc.want) {
				t.Errorf("%s:\n got %q\nwant %q", tc.path, got, tc.want)
			}
			if b.Total == nil || *b.Total != len(tc.want) {
				t.Errorf("%s: total %v, want %d", tc.path, b.Total, len(tc.want))
			}
		})
	}

	t.Run("paging", func(t *testing.T) {
		var got []string
		next := "/_history?_count=1&_list=" + list
		for pages := 0; next != ""; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			b := getHistory(t, c, next)
			if self := b.link("self"); !containsParam(self, "_list", list) {
				t.Errorf("self link %q does not keep _list", self)
			}
			got = append(got, versions(b)...)
			next = b.link("next")
		}
		slices.Sort(got)
		if want := []string{v("Basic", b1, "1"), v("Basic", b1, "2"), v("Basic", b2, "1"), v("Patient", p, "1")}; !slices.Equal(got, want) {
			t.Errorf("pages hold %q, want %q", got, want)
		}
	})

	expectOutcome(t, c.Do("GET", "/Basic/_history?_list="+list+"&_list="+list, nil), 400, "_list twice")
	expectOutcome(t, c.Do("GET", "/_history?_list="+uniqueID("none"), nil), 400, "_list of an unknown List")
	expectOutcome(t, c.Do("GET", "/_history?_list=", nil), 400, "an empty _list")
}

// lastTwo is "Type/id" of a fullUrl.
func lastTwo(u string) string {
	parts := strings.Split(u, "/")
	if len(parts) < 2 {
		return u
	}
	return strings.Join(parts[len(parts)-2:], "/")
}

// containsParam reports whether link's query has name=value.
func containsParam(link, name, value string) bool {
	u, err := url.Parse(link)
	return err == nil && slices.Contains(u.Query()[name], value)
}
