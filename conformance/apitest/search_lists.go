package apitest

import (
	"encoding/json"
	"strings"
	"testing"
)

// testListCapability: _list is declared at system level, and so is the
// refusal of functional lists (search.html#list lets a server define them).
func testListCapability(t *testing.T, c *Client) {
	r := c.Do("GET", "/metadata", nil)
	expectStatus(t, r, 200, "GET /metadata")
	var cs struct {
		Rest []struct {
			SearchParam []struct{ Name, Type, Documentation string }
		}
	}
	if err := json.Unmarshal(r.Body, &cs); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	for _, rest := range cs.Rest {
		for _, sp := range rest.SearchParam {
			if sp.Name == "_list" {
				if !strings.Contains(sp.Documentation, "not supported") {
					t.Errorf("_list documentation %q does not say functional lists are not supported", sp.Documentation)
				}
				return
			}
		}
	}
	t.Error("the CapabilityStatement does not declare _list in rest.searchParam")
}

// _list (search.html#list): the resources a stored List holds. List/long
// (an official example) lists Patient/example, pat1…pat4, 1…295 and a few
// other examples; of them the corpus holds these nine.
var longListPatients = []string{
	"Patient/f001", "Patient/f201", "Patient/ihe-pcd", "Patient/mom", "Patient/pat1",
	"Patient/pat2", "Patient/pat3", "Patient/pat4", "Patient/xcda",
}

func listCases() []searchCase {
	return []searchCase{
		{name: "_list: the patients of a List", query: "Patient?_list=long", want: longListPatients},
		// female among them: mom and pat4
		{name: "_list and another parameter are AND", query: "Patient?_list=long&gender=female", want: []string{"Patient/mom", "Patient/pat4"}},
		{name: "_list at system level", query: "?_type=Patient,Condition&_list=long", want: longListPatients},
		// List/example: Condition/example is marked deleted, Condition/example2 is not stored
		{name: "_list leaves out deleted entries", query: "Condition?_list=example", want: nil},
		{name: "_list of an empty List", query: "Patient?_list=example-simple-empty", want: nil},
		{name: "_list of a type the List does not hold", query: "Observation?_list=long", want: nil},
		{name: "_list pages", query: "Patient?_list=long&_count=4", want: longListPatients},
		{name: "_list unknown List", query: "Patient?_list=no-such-list", status: 400, check: names("no-such-list")},
		// search.html#list: functional lists are the server's to define; Kiln defines none
		{name: "_list functional list", query: "Patient?_list=$current-allergies", status: 400, check: names("$current-allergies")},
	}
}
