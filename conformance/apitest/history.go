package apitest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// wireEntry is a Bundle entry as read from the wire: history, search and
// response bundles use different parts of it.
type wireEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Search   *struct {
		Mode string `json:"mode"`
	} `json:"search"`
	Request struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	Response struct {
		Status       string `json:"status"`
		Etag         string `json:"etag"`
		LastModified string `json:"lastModified"`
	} `json:"response"`
}

// wireBundle is a Bundle as read from the wire.
type wireBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Total        *int   `json:"total"`
	Link         []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []wireEntry `json:"entry"`
}

func (b *wireBundle) link(rel string) string {
	for _, l := range b.Link {
		if l.Relation == rel {
			return l.URL
		}
	}
	return ""
}

type historyBundle = wireBundle

func getHistory(t testing.TB, c *Client, path string) historyBundle {
	t.Helper()
	r := c.Do("GET", path, nil)
	expectStatus(t, r, 200, "GET "+path)
	var b historyBundle
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b.ResourceType != "Bundle" || b.Type != "history" {
		t.Fatalf("%s: %s of type %s, want a history Bundle", path, b.ResourceType, b.Type)
	}
	return b
}

func testHistory(t *testing.T, c *Client, _ Options) {
	// A type of its own so that type history is exactly what this test wrote.
	const typ = "Basic"
	res := func(id, text string) []byte {
		return []byte(fmt.Sprintf(`{"resourceType":"Basic","id":%q,"code":{"text":%q}}`, id, text))
	}
	id, _ := create(t, c, typ, `{"resourceType":"Basic","code":{"text":"v1"}}`)
	time.Sleep(5 * time.Millisecond)
	mid := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	expectStatus(t, c.Do("PUT", "/Basic/"+id, res(id, "v2")), 200, "update")
	r := c.Do("DELETE", "/Basic/"+id, nil)
	if r.Status >= 300 {
		t.Fatalf("delete: %d", r.Status)
	}

	b := getHistory(t, c, "/Basic/"+id+"/_history")
	if len(b.Entry) != 3 || b.Total == nil || *b.Total != 3 {
		t.Fatalf("instance history: %d entries, total %v, want 3", len(b.Entry), b.Total)
	}
	for i, want := range []struct{ method, url, etag string }{
		{"DELETE", "Basic/" + id, `W/"3"`},
		{"PUT", "Basic/" + id, `W/"2"`},
		{"POST", "Basic", `W/"1"`},
	} {
		e := b.Entry[i]
		if e.Request.Method != want.method || e.Request.URL != want.url || e.Response.Etag != want.etag {
			t.Errorf("entry %d: %s %s %s, want %s %s %s (newest first)", i, e.Request.Method, e.Request.URL, e.Response.Etag, want.method, want.url, want.etag)
		}
		if e.Response.Status == "" || !strings.HasSuffix(e.FullURL, "/Basic/"+id) || e.Response.LastModified == "" {
			t.Errorf("entry %d: status %q fullUrl %q lastModified %q", i, e.Response.Status, e.FullURL, e.Response.LastModified)
		}
		if (e.Resource == nil) != (want.method == "DELETE") {
			t.Errorf("entry %d (%s): resource present = %v", i, want.method, e.Resource != nil)
		}
	}

	// _since after the first version leaves it out (A-HI-04).
	b = getHistory(t, c, "/Basic/"+id+"/_history?_since="+url.QueryEscape(mid.Format(time.RFC3339Nano)))
	if len(b.Entry) != 2 {
		t.Errorf("_since: %d entries, want 2", len(b.Entry))
	}
	// _at: the version current at mid is version 1.
	b = getHistory(t, c, "/Basic/"+id+"/_history?_at="+url.QueryEscape(mid.Format(time.RFC3339Nano)))
	if len(b.Entry) != 1 || b.Entry[0].Response.Etag != `W/"1"` {
		t.Errorf("_at: %d entries, want version 1 only", len(b.Entry))
	}

	// Paging with _count across instance history: pages chain through next
	// and hold every version once.
	pid := uniqueID("pg")
	for i := 1; i <= 7; i++ {
		expectStatus(t, c.Do("PUT", "/Basic/"+pid, res(pid, fmt.Sprint("p", i))), map[bool]int{true: 201, false: 200}[i == 1], "write")
	}
	seen := map[string]bool{}
	next := "/Basic/" + pid + "/_history?_count=3"
	pages := 0
	for next != "" {
		b = getHistory(t, c, next)
		if len(b.Entry) > 3 {
			t.Fatalf("page of %d entries with _count=3", len(b.Entry))
		}
		if pages == 0 {
			// A write between pages must not shift the following pages.
			expectStatus(t, c.Do("PUT", "/Basic/"+pid, res(pid, "late")), 200, "write between pages")
		}
		for _, e := range b.Entry {
			if seen[e.Response.Etag] {
				t.Errorf("version %s on two pages", e.Response.Etag)
			}
			seen[e.Response.Etag] = true
		}
		next = b.link("next")
		pages++
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if len(seen) != 7 || pages != 3 {
		t.Errorf("paged %d versions over %d pages, want 7 over 3", len(seen), pages)
	}
	if b := getHistory(t, c, "/Basic/"+pid+"/_history?_count=3&foo=bar"); strings.Contains(b.link("self"), "foo") {
		t.Errorf("self link keeps an ignored parameter: %s", b.link("self"))
	}

	// Type and system history see the same versions.
	tb := getHistory(t, c, "/Basic/_history?_count=1000")
	sb := getHistory(t, c, "/_history?_count=1")
	if tb.Total == nil || *tb.Total < 11 || sb.Total == nil || *sb.Total < *tb.Total {
		t.Errorf("type history total %v, system history total %v", tb.Total, sb.Total)
	}
	for _, e := range tb.Entry {
		if !strings.Contains(e.FullURL, "/Basic/") {
			t.Errorf("type history holds %s", e.FullURL)
		}
	}
	if len(sb.Entry) != 1 || sb.link("next") == "" {
		t.Errorf("system history _count=1: %d entries, next %q", len(sb.Entry), sb.link("next"))
	}

	expectOutcome(t, c.Do("GET", "/Basic/_history?_count=1&_count=2", nil), 400, "_count twice")
	expectOutcome(t, c.Do("GET", "/Basic/_history?_since=yesterday", nil), 400, "bad _since")
	expectOutcome(t, c.Do("GET", "/Basic/_history?_page=garbage", nil), 400, "tampered cursor")
	expectOutcome(t, c.Do("GET", "/Basic/"+uniqueID("none")+"/_history", nil), 404, "history of a resource that never existed")

	t.Run("_list", func(t *testing.T) {
		cc := *c
		cc.T = t
		testHistoryList(t, &cc)
	})
}
