package apitest

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// testBadInput: every malformed request gets the right status with an
// OperationOutcome pointing at the element, and stores nothing.
func testBadInput(t *testing.T, c *Client, opts Options) {
	before := systemTotal(t, c)
	big := opts.MaxBody + 1
	if big <= 1 {
		big = 16<<20 + 1
	}
	hugeName := bytes.Repeat([]byte("a"), int(big))
	huge := append(append([]byte(`{"resourceType":"Patient","name":[{"family":"`), hugeName...), []byte(`"}]}`)...)

	for _, tc := range []struct {
		name, method, path string
		body               []byte
		status             int
		expr               string // an issue must name it ("" = don't check)
	}{
		{"malformed JSON", "POST", "/Patient", []byte(`{"resourceType":"Patient",`), 400, ""},
		{"type mismatch", "POST", "/Patient", []byte(`{"resourceType":"Observation","status":"final","code":{"text":"x"}}`), 400, "resourceType"},
		{"unknown type", "POST", "/Frobnicator", []byte(`{"resourceType":"Frobnicator"}`), 404, ""},
		{"invalid date", "POST", "/Patient", []byte(`{"resourceType":"Patient","birthDate":"1974-13-25"}`), 400, "Patient.birthDate"},
		{"invalid code", "POST", "/Patient", []byte(`{"resourceType":"Patient","gender":"mal"}`), 400, "Patient.gender"},
		{"unknown element", "POST", "/Patient", []byte(`{"resourceType":"Patient","favouriteColour":"blue"}`), 400, "Patient.favouriteColour"},
		{"wrong type", "POST", "/Patient", []byte(`{"resourceType":"Patient","active":"yes"}`), 400, "Patient.active"},
		{"wrong reference target", "POST", "/Patient", []byte(`{"resourceType":"Patient","managingOrganization":{"reference":"Patient/1"}}`), 400, "Patient.managingOrganization"},
		{"empty body", "POST", "/Patient", []byte{}, 400, ""},
		{"JSON array", "POST", "/Patient", []byte(`[{"resourceType":"Patient"}]`), 400, ""},
		{"JSON number", "POST", "/Patient", []byte(`42`), 400, ""},
		{"JSON null", "POST", "/Patient", []byte(`null`), 400, ""},
		{"null element", "POST", "/Patient", []byte(`{"resourceType":"Patient","gender":null}`), 400, "Patient.gender"},
		{"duplicate key", "POST", "/Patient", []byte(`{"resourceType":"Patient","gender":"male","gender":"female"}`), 400, "Patient.gender"},
		{"over the size limit", "POST", "/Patient", huge, 413, ""},
		{"id too long", "PUT", "/Patient/" + strings.Repeat("a", 65), []byte(fmt.Sprintf(`{"resourceType":"Patient","id":%q}`, strings.Repeat("a", 65))), 400, ""},
		{"id with bad characters", "PUT", "/Patient/a_b", []byte(`{"resourceType":"Patient","id":"a_b"}`), 400, ""},
		{"two bad fields, two issues", "POST", "/Patient", []byte(`{"resourceType":"Patient","birthDate":"1974-13-25","gender":"mal"}`), 400, "Patient.gender"},
		{"update type mismatch", "PUT", "/Patient/x1", []byte(`{"resourceType":"Basic","id":"x1","code":{"text":"x"}}`), 400, "resourceType"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			issues := expectOutcome(t, c.Do(tc.method, tc.path, tc.body), tc.status, tc.name)
			if tc.expr != "" && !hasExpression(issues, tc.expr) {
				t.Errorf("no issue names %s: %v", tc.expr, issues)
			}
			if tc.name == "two bad fields, two issues" && (len(issues) < 2 || !hasExpression(issues, "Patient.birthDate")) {
				t.Errorf("want an issue per bad field, got %v", issues)
			}
		})
	}
	if after := systemTotal(t, c); after != before {
		t.Fatalf("rejected requests stored %d versions", after-before)
	}
}

// testConcurrentIfMatch: many writers holding the same ETag; exactly one
// wins, the others get 412 (http.html#concurrency).
func testConcurrentIfMatch(t *testing.T, c *Client, _ Options) {
	id := uniqueID("race")
	expectStatus(t, c.Do("PUT", "/Patient/"+id, []byte(patient(id, "Start"))), 201, "create")
	const writers = 24
	var wg sync.WaitGroup
	statuses := make([]int, writers)
	start := make(chan struct{})
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i] = c.Do("PUT", "/Patient/"+id, []byte(patient(id, fmt.Sprint("W", i))), "If-Match", `W/"1"`).Status
		}()
	}
	close(start)
	wg.Wait()
	won, lost := 0, 0
	for _, s := range statuses {
		switch s {
		case 200:
			won++
		case 412:
			lost++
		default:
			t.Errorf("unexpected status %d", s)
		}
	}
	if won != 1 || lost != writers-1 {
		t.Fatalf("%d writers won and %d got 412; want exactly one winner", won, lost)
	}
	b := getHistory(t, c, "/Patient/"+id+"/_history")
	if len(b.Entry) != 2 {
		t.Errorf("history holds %d versions, want 2", len(b.Entry))
	}
}
