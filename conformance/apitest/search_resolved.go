package apitest

import (
	"fmt"
	"strings"
	"testing"
)

// testSearchResolved: the searches the server resolves through other
// stored resources — token :in/:not-in (a ValueSet), :above/:below (a
// CodeSystem), _list (a List) — on data of their own, so they run on
// every backend, and follow writes to those resources.
func testSearchResolved(t *testing.T, c *Client) {
	sys := "http://kiln.example/cs/" + uniqueName("cs")
	vsURL := "http://kiln.example/vs/" + uniqueName("vs")
	// a ⊃ {b ⊃ {c}, d}; e stands alone.
	create(t, c, "CodeSystem", `{"resourceType":"CodeSystem","url":"`+sys+`","status":"active","content":"complete",
		"concept":[{"code":"a","concept":[{"code":"b","concept":[{"code":"c"}]},{"code":"d"}]},{"code":"e"}]}`)
	obs := map[string]string{}
	for _, code := range []string{"a", "b", "c", "d", "e"} {
		id, _ := create(t, c, "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final",
			"code":{"coding":[{"system":%q,"code":%q}]}}`, sys, code))
		obs[code] = "Observation/" + id
	}
	pick := func(codes ...string) []string {
		var out []string
		for _, c := range codes {
			out = append(out, obs[c])
		}
		return out
	}
	inSys := "/Observation?code=" + sys + "|&"
	expectMatches(t, c, inSys+"code:below="+sys+"|b", pick("b", "c")...)
	expectMatches(t, c, inSys+"code:above="+sys+"|c", pick("a", "b", "c")...)
	expectMatches(t, c, inSys+"code:below="+sys+"|a", pick("a", "b", "c", "d")...)

	// A ValueSet written over the API is used by the next search, and
	// its next version by the one after.
	vs := func(id, compose string) string {
		if id != "" {
			id = `"id":"` + id + `",`
		}
		return `{"resourceType":"ValueSet",` + id + `"url":"` + vsURL + `","status":"active","compose":` + compose + `}`
	}
	vsID, _ := create(t, c, "ValueSet", vs("", `{"include":[{"system":"`+sys+`","filter":[{"property":"concept","op":"descendent-of","value":"a"}]}]}`))
	expectMatches(t, c, inSys+"code:in="+vsURL, pick("b", "c", "d")...)
	expectMatches(t, c, inSys+"code:not-in="+vsURL, pick("a", "e")...)
	expectMatches(t, c, inSys+"code:in=ValueSet/"+vsID, pick("b", "c", "d")...)
	// a complete CodeSystem included whole is its codes, less an exclude
	r := c.Do("PUT", "/ValueSet/"+vsID, []byte(vs(vsID, `{"include":[{"system":"`+sys+`"}],"exclude":[{"system":"`+sys+`","concept":[{"code":"a"},{"code":"e"}]}]}`)))
	expectStatus(t, r, 200, "update the ValueSet")
	expectMatches(t, c, inSys+"code:in="+vsURL, pick("b", "c", "d")...)
	expectMatches(t, c, inSys+"code:not-in="+vsURL, pick("a", "e")...)

	// Bounded: an expansion past 1000 codes is refused, saying so.
	var concepts []string
	for i := range 1001 {
		concepts = append(concepts, fmt.Sprintf(`{"code":"x%d"}`, i))
	}
	bigURL := vsURL + "-big"
	create(t, c, "ValueSet", `{"resourceType":"ValueSet","url":"`+bigURL+`","status":"active",
		"compose":{"include":[{"system":"`+sys+`","concept":[`+strings.Join(concepts, ",")+`]}]}}`)
	issues := expectOutcome(t, c.Do("GET", "/Observation?code:in="+bigURL, nil), 422, "an expansion of 1001 codes")
	if !mentionsAny(issues, "1000") {
		t.Errorf("the refusal does not say the bound: %v", issues)
	}

	// _list follows the List: its items, then its next version's, paged.
	list := func(id string, codes ...string) string {
		var entries []string
		for _, code := range codes {
			entries = append(entries, `{"item":{"reference":"`+obs[code]+`"}}`)
		}
		return fmt.Sprintf(`{"resourceType":"List","id":%q,"status":"current","mode":"working","entry":[%s]}`, id, strings.Join(entries, ","))
	}
	listID := uniqueID("list")
	r = c.Do("PUT", "/List/"+listID, []byte(list(listID, "a", "c", "e")))
	expectStatus(t, r, 201, "PUT the List")
	expectMatches(t, c, "/Observation?_list="+listID+"&_count=2", pick("a", "c", "e")...)
	r = c.Do("PUT", "/List/"+listID, []byte(list(listID, "b", "d")))
	expectStatus(t, r, 200, "update the List")
	expectMatches(t, c, "/Observation?_list="+listID, pick("b", "d")...)
	expectMatches(t, c, "/Observation?_list="+listID+"&code:below="+sys+"|b", pick("b")...)
}

func mentionsAny(issues []map[string]any, s string) bool {
	for _, is := range issues {
		if mentions(is, s) {
			return true
		}
	}
	return false
}

// testSearchCompartmentAll: GET Patient/[id]/* on data of its own — the
// resources of several types that point at the patient through their
// compartment parameters, paged, and nothing that points elsewhere.
func testSearchCompartmentAll(t *testing.T, c *Client) {
	pid, _ := create(t, c, "Patient", patient("", uniqueName("Everyone")))
	other, _ := create(t, c, "Patient", patient("", uniqueName("Someone")))
	var want []string
	for _, body := range []string{
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`,
		`{"resourceType":"Condition","subject":{"reference":"Patient/%s"}}`,
		`{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/%s"}}`,
		// in the compartment through performer, not subject
		`{"resourceType":"Observation","status":"final","code":{"text":"y"},"performer":[{"reference":"Patient/%s"}]}`,
	} {
		typ := strings.Split(body, `"`)[3]
		id, _ := create(t, c, typ, fmt.Sprintf(body, pid))
		want = append(want, typ+"/"+id)
		create(t, c, typ, fmt.Sprintf(body, other))
	}
	expectMatches(t, c, "/Patient/"+pid+"/*?_count=3", want...)
	expectMatches(t, c, "/Patient/"+pid+"/*?_type=Condition,AllergyIntolerance", want[1:3]...)
}
