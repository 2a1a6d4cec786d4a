package rest_test

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/apitest"
	"github.com/kiln-fhir/kiln/conformance/synthea"
)

// bundleRefs collects every "reference" value in a decoded JSON value.
func bundleRefs(v any, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "reference" {
				out[s] = true
			}
			bundleRefs(x, out)
		}
	case []any:
		for _, x := range v {
			bundleRefs(x, out)
		}
	}
}

// loadPatient PUTs every resource of a Synthea bundle, its urn:uuid
// references made relative, and returns what $everything of its patient
// must list, computed from the bundle alone: the Patient; every resource
// that references the patient (in Synthea, exactly the patient's
// compartment); every Medication, Practitioner, Organization or Location
// one of those references.
func loadPatient(t *testing.T, c *apitest.Client, b synthea.Bundle) (patientID string, want map[string]bool) {
	t.Helper()
	var pairs []string
	byURL := map[string]string{} // fullUrl → Type/id
	for _, e := range b.Entries {
		var head struct{ ID string }
		json.Unmarshal(e.Resource, &head)
		byURL[e.FullURL] = e.Type + "/" + head.ID
		pairs = append(pairs, `"`+e.FullURL+`"`, `"`+e.Type+"/"+head.ID+`"`)
		if e.Type == "Patient" {
			patientID = head.ID
		}
	}
	rewrite := strings.NewReplacer(pairs...)
	for _, e := range b.Entries {
		key := byURL[e.FullURL]
		if r := c.Do("PUT", "/"+key, []byte(rewrite.Replace(string(e.Resource)))); r.Status != 201 {
			t.Fatalf("PUT %s: %d %s", key, r.Status, r.Body)
		}
	}

	patient := "Patient/" + patientID
	want = map[string]bool{patient: true}
	referenced := map[string]bool{}
	for _, e := range b.Entries {
		var res any
		json.Unmarshal(e.Resource, &res)
		refs := map[string]bool{}
		bundleRefs(res, refs)
		key := byURL[e.FullURL]
		if key == patient || !refs[findURL(byURL, patient)] {
			if key == patient {
				for r := range refs {
					referenced[r] = true
				}
			}
			continue
		}
		want[key] = true
		for r := range refs {
			referenced[r] = true
		}
	}
	for r := range referenced {
		key, ok := byURL[r]
		typ, _, _ := strings.Cut(key, "/")
		if ok && slices.Contains([]string{"Medication", "Practitioner", "Organization", "Location"}, typ) {
			want[key] = true
		}
	}
	return patientID, want
}

func findURL(byURL map[string]string, key string) string {
	for u, k := range byURL {
		if k == key {
			return u
		}
	}
	return ""
}

// everythingPages follows next links from path and returns the entries'
// Type/id in order, failing on a page larger than max or a bundle that is
// not a searchset.
func everythingPages(t *testing.T, c *apitest.Client, path string, max int) []string {
	t.Helper()
	var got []string
	for pages := 0; path != ""; pages++ {
		if pages > 1000 {
			t.Fatal("more than 1000 pages: the next links loop")
		}
		r := c.Do("GET", path, nil)
		if r.Status != 200 {
			t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
		}
		var b struct {
			Type  string
			Link  []struct{ Relation, URL string }
			Entry []struct {
				FullURL  string
				Resource struct{ ResourceType, ID string }
				Search   struct{ Mode string }
			}
		}
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Type != "searchset" {
			t.Fatalf("Bundle.type %q, want searchset", b.Type)
		}
		if len(b.Entry) > max {
			t.Fatalf("page of %d entries, _count %d", len(b.Entry), max)
		}
		for _, e := range b.Entry {
			key := e.Resource.ResourceType + "/" + e.Resource.ID
			if !strings.HasSuffix(e.FullURL, "/"+key) {
				t.Errorf("fullUrl %s for %s", e.FullURL, key)
			}
			got = append(got, key)
		}
		path = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				path = l.URL
			}
		}
	}
	return got
}

func keysOf(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestEverything: patient-operation-everything.html over a real SQLite
// store holding two Synthea patients, followed page by page.
func TestEverything(t *testing.T) {
	c, _ := newServer(t)
	bundles, err := synthea.Load("../../testdata/synthea")
	if err != nil {
		t.Fatal(err)
	}
	if len(bundles) < 2 {
		t.Fatal("need two Synthea bundles")
	}
	id, want := loadPatient(t, c, bundles[0])
	otherID, otherWant := loadPatient(t, c, bundles[1])
	if len(want) < 20 || len(otherWant) < 20 {
		t.Fatalf("expected sets too small: %d, %d", len(want), len(otherWant))
	}
	t.Logf("%s: %d resources expected: %v", bundles[0].File, len(want), keysOf(want)[:3])

	for _, tc := range []struct {
		name, query string
		keep        func(key string) bool
	}{
		{"all, default page", "", func(string) bool { return true }},
		{"all, pages of 7", "?_count=7", func(string) bool { return true }},
		{"pages of 1", "?_count=1", func(string) bool { return true }},
		{"_type", "?_type=Observation,Practitioner&_count=10", func(k string) bool {
			return strings.HasPrefix(k, "Observation/") || strings.HasPrefix(k, "Practitioner/")
		}},
		{"_type without Patient keeps the references", "?_type=Organization", func(k string) bool { return strings.HasPrefix(k, "Organization/") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := 50
			if q, _ := url.ParseQuery(strings.TrimPrefix(tc.query, "?")); q.Get("_count") != "" {
				json.Unmarshal([]byte(q.Get("_count")), &max)
			}
			got := everythingPages(t, c, "/Patient/"+id+"/$everything"+tc.query, max)
			var exp []string
			for k := range want {
				if tc.keep(k) {
					exp = append(exp, k)
				}
			}
			slices.Sort(exp)
			if len(got) > 0 && tc.keep("Patient/"+id) && got[0] != "Patient/"+id {
				t.Errorf("first entry %s, want the Patient", got[0])
			}
			sorted := slices.Clone(got)
			slices.Sort(sorted)
			if !slices.Equal(sorted, exp) {
				t.Errorf("got %d entries, want %d\nmissing %v\nextra %v", len(got), len(exp), diff(exp, sorted), diff(sorted, exp))
			}
		})
	}

	// The other patient's record is its own: nothing of the first leaks.
	got := everythingPages(t, c, "/Patient/"+otherID+"/$everything?_count=1000", 1000)
	slices.Sort(got)
	if exp := keysOf(otherWant); !slices.Equal(got, exp) {
		t.Errorf("other patient: missing %v extra %v", diff(exp, got), diff(got, exp))
	}

	t.Run("_since", func(t *testing.T) {
		since := time.Now().UTC()
		time.Sleep(5 * time.Millisecond)
		var obs string
		for _, k := range keysOf(want) {
			if strings.HasPrefix(k, "Observation/") {
				obs = k
				break
			}
		}
		cur := c.Do("GET", "/"+obs, nil)
		if r := c.Do("PUT", "/"+obs, cur.Body); r.Status != 200 {
			t.Fatalf("update %s: %d", obs, r.Status)
		}
		got := everythingPages(t, c, "/Patient/"+id+"/$everything?_since="+since.Format(time.RFC3339Nano), 50)
		if !slices.Equal(got, []string{obs}) {
			t.Errorf("_since: got %v, want [%s]", got, obs)
		}
	})

	t.Run("errors", func(t *testing.T) {
		c.Do("PUT", "/Patient/gone", []byte(`{"resourceType":"Patient","id":"gone"}`))
		c.Do("DELETE", "/Patient/gone", nil)
		for _, tc := range []struct {
			path   string
			status int
			code   string
		}{
			{"/Patient/nobody/$everything", 404, "not-found"},
			{"/Patient/gone/$everything", 410, "deleted"},
			{"/Patient/" + id + "/$everything?_count=0", 400, "value"},
			{"/Patient/" + id + "/$everything?_count=x", 400, "value"},
			{"/Patient/" + id + "/$everything?_type=Nope", 400, "value"},
			{"/Patient/" + id + "/$everything?_since=2020-01-01", 400, "value"},
			{"/Patient/" + id + "/$everything?_page=garbage", 400, "value"},
			{"/Patient/" + id + "/$everything?start=2020-01-01", 400, "not-supported"},
		} {
			r := c.Do("GET", tc.path, nil)
			if r.Status != tc.status {
				t.Errorf("%s: status %d, want %d: %s", tc.path, r.Status, tc.status, r.Body)
				continue
			}
			if codes := issueCodes(t, r); codes[0] != tc.code {
				t.Errorf("%s: issue %v, want %s", tc.path, codes, tc.code)
			}
		}
	})
}

// diff lists what a has and b lacks.
func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
