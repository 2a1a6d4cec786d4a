package apitest

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// Conditional interactions (http.html#cond-update and the sections
// beside it, checklist A.9): each finds its target by search, with the
// 0 / 1 / many rules. Every scenario uses an identifier system of its own.

// identified is a Patient with one identifier; id may be empty.
func identified(id, system, value, family string) []byte {
	idPart := ""
	if id != "" {
		idPart = fmt.Sprintf(`"id":%q,`, id)
	}
	return []byte(fmt.Sprintf(`{"resourceType":"Patient",%s"identifier":[{"system":%q,"value":%q}],"name":[{"family":%q}]}`,
		idPart, system, value, family))
}

// byIdentifier is the query that finds identified patients.
func byIdentifier(system, value string) string {
	return "identifier=" + url.QueryEscape(system+"|"+value)
}

// capability reads rest.resource[type] from the CapabilityStatement.
func capability(t testing.TB, c *Client, typ string) map[string]any {
	t.Helper()
	r := c.Do("GET", "/metadata", nil)
	expectStatus(t, r, 200, "GET /metadata")
	rest, _ := r.JSON(t)["rest"].([]any)
	for _, rs := range rest {
		resources, _ := rs.(map[string]any)["resource"].([]any)
		for _, res := range resources {
			if m, ok := res.(map[string]any); ok && m["type"] == typ {
				return m
			}
		}
	}
	t.Fatalf("the CapabilityStatement does not list %s", typ)
	return nil
}

// testConditionalCreate: A-CC-01, POST with If-None-Exist.
func testConditionalCreate(t *testing.T, c *Client) {
	sys := "urn:kiln:apitest:" + uniqueName("cc")
	query := byIdentifier(sys, "1")

	r := c.Do("POST", "/Patient", identified("", sys, "1", "First"), "If-None-Exist", query)
	expectStatus(t, r, 201, "conditional create, no match")
	first, _ := r.JSON(t)["id"].(string)

	before := systemTotal(t, c)
	r = c.Do("POST", "/Patient", identified("", sys, "1", "Second"), "If-None-Exist", query)
	expectStatus(t, r, 200, "conditional create, one match (http.html#ccreate: 200 OK, nothing created)")
	if after := systemTotal(t, c); after != before {
		t.Errorf("a conditional create that matched stored %d versions", after-before)
	}
	expectMatches(t, c, "/Patient?"+query, "Patient/"+first)
	if len(r.Body) > 0 {
		if rm := r.JSON(t); rm["resourceType"] == "Patient" && rm["id"] != first {
			t.Errorf("the 200 answer shows Patient/%v, not the match Patient/%s", rm["id"], first)
		}
	}

	second, _ := create(t, c, "Patient", string(identified("", sys, "1", "Plain")))
	before = systemTotal(t, c)
	issues := expectOutcome(t, c.Do("POST", "/Patient", identified("", sys, "1", "Third"), "If-None-Exist", query),
		412, "conditional create, two matches")
	if len(issues) == 0 {
		t.Errorf("412 without an issue")
	}
	if after := systemTotal(t, c); after != before {
		t.Errorf("a conditional create with two matches stored %d versions", after-before)
	}
	expectMatches(t, c, "/Patient?"+query, "Patient/"+first, "Patient/"+second)

	// The query is a search like any other: a malformed one is refused.
	expectOutcome(t, c.Do("POST", "/Patient", identified("", sys, "2", "Bad"), "If-None-Exist", "birthdate=2020-13"),
		400, "If-None-Exist with a malformed date")
	expectMatches(t, c, "/Patient?"+byIdentifier(sys, "2"))

	if cc := capability(t, c, "Patient"); cc["conditionalCreate"] != true {
		t.Errorf("conditional create works, but the CapabilityStatement says conditionalCreate %v", cc["conditionalCreate"])
	}
}

// testConditionalUpdate: A-CC-02, PUT [type]?[query], branch by branch.
func testConditionalUpdate(t *testing.T, c *Client) {
	sys := "urn:kiln:apitest:" + uniqueName("cu")
	put := func(value string, body []byte) Response {
		return c.Do("PUT", "/Patient?"+byIdentifier(sys, value), body)
	}

	// No match, no id: create.
	r := put("a", identified("", sys, "a", "Created"))
	expectStatus(t, r, 201, "no match, no id: create")
	id, _ := r.JSON(t)["id"].(string)
	if id == "" || !strings.Contains(r.Header.Get("Location"), "/Patient/"+id+"/_history/1") {
		t.Fatalf("conditional update-as-create: id %q, Location %q", id, r.Header.Get("Location"))
	}
	expectMatches(t, c, "/Patient?"+byIdentifier(sys, "a"), "Patient/"+id)

	// No match, an id: update as create, or refused.
	bID := uniqueID("cu-b")
	r = put("b", identified(bID, sys, "b", "WithID"))
	switch {
	case r.Status == 201:
		expectStatus(t, c.Do("GET", "/Patient/"+bID, nil), 200, "the resource created by a conditional update with an id")
	case r.Status >= 400 && r.Status < 500:
		expectOutcome(t, r, r.Status, "no match, an id: refused")
		expectMatches(t, c, "/Patient?"+byIdentifier(sys, "b"))
	default:
		t.Errorf("no match, an id: status %d, want 201 (update as create) or a 4xx refusal\n%s", r.Status, truncate(r.Body))
	}

	// One match, no id in the body: update it.
	r = put("a", identified("", sys, "a", "Updated"))
	expectStatus(t, r, 200, "one match, no id: update")
	m := r.JSON(t)
	if vid, _ := meta(t, m); m["id"] != id || vid != "2" {
		t.Errorf("one match, no id: updated Patient/%v version %s, want Patient/%s version 2", m["id"], vid, id)
	}
	// One match, the same id: update it.
	r = put("a", identified(id, sys, "a", "Again"))
	expectStatus(t, r, 200, "one match, the matching id: update")
	if vid, _ := meta(t, r.JSON(t)); vid != "3" {
		t.Errorf("one match, the matching id: version %s, want 3", vid)
	}
	// One match, another id: 400.
	before := systemTotal(t, c)
	expectOutcome(t, put("a", identified(uniqueID("other"), sys, "a", "Wrong")), 400, "one match, another id")
	if after := systemTotal(t, c); after != before {
		t.Errorf("a refused conditional update stored %d versions", after-before)
	}
	got := c.Do("GET", "/Patient/"+id, nil).JSON(t)
	if names, _ := got["name"].([]any); len(names) != 1 || names[0].(map[string]any)["family"] != "Again" {
		t.Errorf("after the updates Patient/%s has name %v, want family Again", id, got["name"])
	}
	// A-CC-05: history shows plain versions of the resource.
	h := getHistory(t, c, "/Patient/"+id+"/_history")
	if len(h.Entry) != 3 {
		t.Errorf("history of the conditionally updated patient: %d versions, want 3", len(h.Entry))
	}
	for _, e := range h.Entry {
		if strings.Contains(e.Request.URL, "?") {
			t.Errorf("history entry %s %s: want the plain interaction, not the conditional one", e.Request.Method, e.Request.URL)
		}
	}

	// Several matches: 412.
	create(t, c, "Patient", string(identified("", sys, "a", "Twin")))
	before = systemTotal(t, c)
	expectOutcome(t, put("a", identified("", sys, "a", "Ambiguous")), 412, "several matches")
	if after := systemTotal(t, c); after != before {
		t.Errorf("a conditional update with several matches stored %d versions", after-before)
	}

	if cc := capability(t, c, "Patient"); cc["conditionalUpdate"] != true {
		t.Errorf("conditional update works, but the CapabilityStatement says conditionalUpdate %v", cc["conditionalUpdate"])
	}
}

// testConditionalDelete: A-CC-03, DELETE [type]?[query]; several matches
// are a 412 or all deleted, as the CapabilityStatement declares.
func testConditionalDelete(t *testing.T, c *Client) {
	sys := "urn:kiln:apitest:" + uniqueName("cd")
	del := func(value string) Response {
		return c.Do("DELETE", "/Patient?"+byIdentifier(sys, value), nil)
	}
	mode, _ := capability(t, c, "Patient")["conditionalDelete"].(string)

	// No match: an ordinary delete of nothing (200 or 204).
	if r := del("none"); r.Status != 200 && r.Status != 204 {
		t.Errorf("conditional delete, no match: status %d, want 200 or 204\n%s", r.Status, truncate(r.Body))
	}

	// One match: deleted.
	one, _ := create(t, c, "Patient", string(identified("", sys, "one", "Single")))
	if r := del("one"); r.Status != 200 && r.Status != 204 {
		t.Fatalf("conditional delete, one match: status %d\n%s", r.Status, truncate(r.Body))
	}
	expectOutcome(t, c.Do("GET", "/Patient/"+one, nil), 410, "read after a conditional delete")
	expectMatches(t, c, "/Patient?"+byIdentifier(sys, "one"))

	// Several matches.
	a, _ := create(t, c, "Patient", string(identified("", sys, "two", "A")))
	b, _ := create(t, c, "Patient", string(identified("", sys, "two", "B")))
	r := del("two")
	switch mode {
	case "multiple":
		if r.Status != 200 && r.Status != 204 {
			t.Errorf("conditionalDelete multiple, two matches: status %d\n%s", r.Status, truncate(r.Body))
		}
		expectMatches(t, c, "/Patient?"+byIdentifier(sys, "two"))
	default: // single (or undeclared): refuse rather than pick one
		expectOutcome(t, r, 412, "conditionalDelete "+mode+", two matches")
		expectMatches(t, c, "/Patient?"+byIdentifier(sys, "two"), "Patient/"+a, "Patient/"+b)
	}
	if mode != "single" && mode != "multiple" {
		t.Errorf("conditional delete works, but the CapabilityStatement says conditionalDelete %q (want single or multiple)", mode)
	}
}
