package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// RunExport runs the Bulk Data export scenarios (Bulk Data Access IG 2.0,
// checklist section E, the lines an Inferno-style client checks) against
// the server at base, which must serve $export without authorization. It
// writes its own patients and group and can share a server with Run.
func RunExport(t *testing.T, base string) {
	base = strings.TrimRight(base, "/")
	client := func(t *testing.T) *Client {
		return &Client{T: t, Base: base, HTTP: &http.Client{Timeout: 60 * time.Second}}
	}
	c := client(t)

	// A group of two patients with an observation each, and a patient
	// outside it (E-FI-07: a group export holds at least 2 patients, and
	// exactly the members).
	var members []string
	for i := range 3 {
		id := uniqueID(fmt.Sprintf("bulk%d", i))
		if r := c.Do("PUT", "/Patient/"+id, []byte(patient(id, "Bulk"))); r.Status != 201 {
			t.Fatalf("PUT Patient/%s: %d %s", id, r.Status, truncate(r.Body))
		}
		obs := fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"bulk"},"subject":{"reference":"Patient/%s"}}`, id)
		create(t, c, "Observation", obs)
		if i < 2 {
			members = append(members, id)
		}
	}
	group := uniqueID("bulkgroup")
	gbody := fmt.Sprintf(`{"resourceType":"Group","id":%q,"type":"person","actual":true,"member":[{"entity":{"reference":"Patient/%s"}},{"entity":{"reference":"Patient/%s"}}]}`,
		group, members[0], members[1])
	if r := c.Do("PUT", "/Group/"+group, []byte(gbody)); r.Status != 201 {
		t.Fatalf("PUT Group: %d %s", r.Status, truncate(r.Body))
	}

	t.Run("kick-off needs Prefer", func(t *testing.T) {
		c := client(t)
		expectOutcome(t, c.Do("GET", "/$export", nil, "Accept", "application/fhir+json"), 400, "kick-off without Prefer")
	})
	t.Run("output formats", func(t *testing.T) {
		c := client(t)
		// E-PA-01, E-PA-02: each NDJSON name, and _since a week ago with
		// an offset, are accepted; then cancelled (E-DL-01, E-ST-09).
		since := time.Now().Add(-7 * 24 * time.Hour).Format("2006-01-02T15:04:05-07:00")
		for _, q := range []string{"_outputFormat=application%2Ffhir%2Bndjson", "_outputFormat=application%2Fndjson",
			"_outputFormat=ndjson", "_since=" + url.QueryEscape(since)} {
			status := exportKickoff(t, c, "/$export?"+q)
			expectStatus(t, c.Do("DELETE", status, nil, "Accept", "application/json"), 202, "cancel")
			expectOutcome(t, c.Do("GET", status, nil, "Accept", "application/json"), 404, "poll after cancel")
		}
	})
	t.Run("group export", func(t *testing.T) {
		c := client(t)
		m := exportPoll(t, c, exportKickoff(t, c, "/Group/"+group+"/$export"))
		var patients []string
		for _, f := range m.Output {
			for _, res := range exportFile(t, c, f) {
				if res["resourceType"] == "Patient" {
					patients = append(patients, res["id"].(string))
				}
			}
		}
		sort.Strings(patients)
		if !slices.Equal(patients, members) {
			t.Errorf("group export Patients %v, want the members %v", patients, members)
		}
	})
	t.Run("system export", func(t *testing.T) {
		c := client(t)
		m := exportPoll(t, c, exportKickoff(t, c, "/$export?_type=Patient,Group"))
		found := map[string]bool{}
		for _, f := range m.Output {
			for _, res := range exportFile(t, c, f) {
				found[res["resourceType"].(string)+"/"+res["id"].(string)] = true
			}
		}
		for _, want := range append([]string{"Group/" + group}, "Patient/"+members[0], "Patient/"+members[1]) {
			if !found[want] {
				t.Errorf("system export lacks %s", want)
			}
		}
	})
}

type exportManifest struct {
	Output []exportOutput `json:"output"`
}

type exportOutput struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int    `json:"count"`
}

// exportKickoff checks E-KO-03: 202 and an absolute Content-Location.
func exportKickoff(t *testing.T, c *Client, path string) string {
	t.Helper()
	r := c.Do("GET", path, nil, "Accept", "application/fhir+json", "Prefer", "respond-async")
	expectStatus(t, r, 202, "kick-off "+path)
	loc, err := url.Parse(r.Header.Get("Content-Location"))
	if err != nil || !loc.IsAbs() {
		t.Fatalf("kick-off %s: Content-Location %q is not an absolute URL", path, r.Header.Get("Content-Location"))
	}
	return loc.String()
}

// exportPoll polls as E-ST-01 describes until the manifest, and checks
// E-ST-05 and E-ST-06.
func exportPoll(t *testing.T, c *Client, status string) exportManifest {
	t.Helper()
	deadline := time.Now().Add(180 * time.Second)
	wait := time.Second
	for time.Now().Before(deadline) {
		r := c.Do("GET", status, nil, "Accept", "application/json")
		switch r.Status {
		case 202:
			if p := r.Header.Get("X-Progress"); len(p) >= 100 {
				t.Errorf("X-Progress of %d characters", len(p))
			}
			d := wait
			if s := r.Header.Get("Retry-After"); s != "" {
				var n int
				if _, err := fmt.Sscan(s, &n); err == nil {
					d = time.Duration(n) * time.Second
				}
			} else {
				wait *= 2
			}
			time.Sleep(min(d, 2*time.Second))
			continue
		case 200:
			if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, "application/json") {
				t.Errorf("manifest Content-Type %q, want application/json", ct)
			}
			var keys map[string]json.RawMessage
			if err := json.Unmarshal(r.Body, &keys); err != nil {
				t.Fatalf("manifest: %v", err)
			}
			for _, k := range []string{"transactionTime", "request", "requiresAccessToken", "output", "error"} {
				if _, ok := keys[k]; !ok {
					t.Errorf("manifest lacks %q", k)
				}
			}
			var m exportManifest
			json.Unmarshal(r.Body, &m)
			return m
		default:
			t.Fatalf("poll: %d %s", r.Status, truncate(r.Body))
		}
	}
	t.Fatal("export did not finish in 180 s")
	return exportManifest{}
}

// exportFile downloads one output file and checks E-ST-07 and E-FI-01.
func exportFile(t *testing.T, c *Client, f exportOutput) []map[string]any {
	t.Helper()
	u, err := url.Parse(f.URL)
	if err != nil || !u.IsAbs() || (u.Scheme != "http" && u.Scheme != "https") || f.Type == "" {
		t.Fatalf("output item %+v: want a type and an absolute http(s) URL", f)
	}
	r := c.Do("GET", f.URL, nil)
	expectStatus(t, r, 200, "GET "+f.URL)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+ndjson") {
		t.Errorf("file Content-Type %q", ct)
	}
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(r.Body), []byte("\n")) {
		var res map[string]any
		if err := json.Unmarshal(line, &res); err != nil {
			t.Fatalf("%s: a line is not JSON: %v", f.URL, err)
		}
		if res["resourceType"] != f.Type {
			t.Errorf("%s: a %v in a %s file", f.URL, res["resourceType"], f.Type)
		}
		out = append(out, res)
	}
	if f.Count != 0 && len(out) != f.Count {
		t.Errorf("%s: %d lines, count %d", f.URL, len(out), f.Count)
	}
	return out
}
