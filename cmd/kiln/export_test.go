package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kiln-fhir/kiln/conformance/apitest"
)

// TestBulkExportOnBinary runs exports through the real binary: serve's
// wiring (bulk in front of the REST API, the --export-* flags, the store's
// jobs), a restart between kick-off and completion, and file expiry.
func TestBulkExportOnBinary(t *testing.T) {
	data := t.TempDir()
	k := startKiln(t, data, "--export-expiry", "2s", "--export-file-size", "600")
	c := k.client(t)
	var want []string
	for i := range 4 {
		p := fmt.Sprintf("bp%d", i)
		put(t, c, "Patient", p, fmt.Sprintf(`{"resourceType":"Patient","id":%q,"gender":"female"}`, p))
		put(t, c, "Observation", "bo"+p, fmt.Sprintf(`{"resourceType":"Observation","id":"bo%s","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/%s"}}`, p, p))
		want = append(want, "Patient/"+p, "Observation/bo"+p)
	}
	put(t, c, "Group", "bg", `{"resourceType":"Group","id":"bg","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/bp1"}}]}`)
	sort.Strings(want)

	// Kick-off, then a graceful restart before the job ran (its settle
	// delay): the new process resumes it.
	r := c.Do("GET", "/$export?_type=Patient,Observation", nil, "Accept", "application/fhir+json", "Prefer", "respond-async")
	if r.Status != http.StatusAccepted {
		t.Fatalf("kick-off: %d %s", r.Status, r.Body)
	}
	status, err := url.Parse(r.Header.Get("Content-Location"))
	if err != nil || !status.IsAbs() {
		t.Fatalf("Content-Location %q", r.Header.Get("Content-Location"))
	}
	k.stop()
	k = startKiln(t, data, "--export-expiry", "2s", "--export-file-size", "600")
	c = k.client(t)

	m := pollExport(t, c, status.Path)
	got := downloadExport(t, c, m)
	if !slices.Equal(got, want) {
		t.Errorf("system export after a restart:\n%v\nwant\n%v", got, want)
	}
	if len(m.Output) <= 2 {
		t.Errorf("%d files at --export-file-size 600: the flag did not apply", len(m.Output))
	}

	r = c.Do("GET", "/Group/bg/$export", nil, "Accept", "application/fhir+json", "Prefer", "respond-async")
	if r.Status != http.StatusAccepted {
		t.Fatalf("group kick-off: %d %s", r.Status, r.Body)
	}
	group, _ := url.Parse(r.Header.Get("Content-Location"))
	gm := pollExport(t, c, group.Path)
	if got := downloadExport(t, c, gm); !slices.Equal(got, []string{"Group/bg", "Observation/bobp1", "Patient/bp1"}) {
		t.Errorf("group export: %v", got)
	}

	// kiln export, the client, against the same server: the files land in
	// --out with the manifest's counts (the command checks them too).
	out := t.TempDir()
	cmd := exec.Command(kilnBinary(t), "export", "--url", k.base, "--type", "Patient,Observation", "--group", "bg", "--out", out, "--quiet")
	summary, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kiln export: %v\n%s", err, summary)
	}
	if !strings.Contains(string(summary), "exported 2 resources") {
		t.Errorf("kiln export summary: %s", summary)
	}
	var files []string
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		files = append(files, e.Name())
	}
	if !slices.Equal(files, []string{"Observation-1.ndjson", "Patient-1.ndjson"}) {
		t.Errorf("kiln export wrote %v", files)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "Patient-1.ndjson")); !bytes.Contains(b, []byte(`"id":"bp1"`)) {
		t.Errorf("Patient-1.ndjson: %s", b)
	}
	// --format parquet: Parquet files, their rows checked against the
	// manifest by the command.
	out = t.TempDir()
	cmd = exec.Command(kilnBinary(t), "export", "--url", k.base, "--type", "Patient,Observation", "--group", "bg", "--out", out, "--quiet", "--format", "parquet")
	if summary, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(summary), "exported 2 resources") {
		t.Fatalf("kiln export --format parquet: %v\n%s", err, summary)
	}
	files = nil
	entries, _ = os.ReadDir(out)
	for _, e := range entries {
		files = append(files, e.Name())
	}
	if !slices.Equal(files, []string{"Observation-1.parquet", "Patient-1.parquet"}) {
		t.Errorf("kiln export --format parquet wrote %v", files)
	}

	// Bulk requests are logged like the REST API's, without their query
	// strings (which may name patients).
	k.waitLog("a bulk file request", func(rec map[string]any) bool {
		return rec["msg"] == "request" && rec["interaction"] == "export-file" && rec["status"] == float64(200)
	})
	if strings.Contains(k.logs(), "bp1") {
		t.Errorf("the log names a patient id")
	}

	// --auth=none: there is nobody to record, so no bulk request (nor
	// any other) became an AuditEvent.
	if r := c.Do("GET", "/AuditEvent", nil); r.Status != http.StatusOK || strings.Contains(string(r.Body), `"entry"`) {
		t.Errorf("AuditEvents under --auth=none: %d %.300s", r.Status, r.Body)
	}

	// The CapabilityStatement lists $export at the three levels bulk
	// serves, with the IG's definitions, and instantiates the IG's
	// statement (export.html#server-capability-documentation), though
	// bulk is routed outside the REST API.
	var cs struct {
		Instantiates []string
		Rest         []struct {
			Operation []struct{ Name, Definition string }
			Resource  []struct {
				Type      string
				Operation []struct{ Name, Definition string }
			}
		}
	}
	if err := json.Unmarshal(c.Do("GET", "/metadata", nil).Body, &cs); err != nil || len(cs.Rest) != 1 {
		t.Fatalf("metadata: %v", err)
	}
	exports := map[string]string{}
	for _, op := range cs.Rest[0].Operation {
		exports["system "+op.Name] = op.Definition
	}
	for _, res := range cs.Rest[0].Resource {
		for _, op := range res.Operation {
			if op.Name == "export" {
				exports[res.Type+" "+op.Name] = op.Definition
			}
		}
	}
	const ig = "http://hl7.org/fhir/uv/bulkdata/"
	if want := map[string]string{"system export": ig + "OperationDefinition/export", "Patient export": ig + "OperationDefinition/patient-export",
		"Group export": ig + "OperationDefinition/group-export"}; !maps.Equal(exports, want) {
		t.Errorf("CapabilityStatement $export entries %v, want %v", exports, want)
	}
	if !slices.Contains(cs.Instantiates, ig+"CapabilityStatement/bulk-data") {
		t.Errorf("instantiates %v", cs.Instantiates)
	}

	// --export-expiry 2s: the files go, and the status with them.
	time.Sleep(3500 * time.Millisecond)
	if r := c.Do("GET", status.Path, nil); r.Status != http.StatusNotFound {
		t.Errorf("status after expiry: %d, want 404", r.Status)
	}
}

// TestExportConformanceOnBinary runs the black-box export scenarios
// against the binary with its default settings.
func TestExportConformanceOnBinary(t *testing.T) {
	k := startKiln(t, t.TempDir(), "--export-max-jobs", "10")
	apitest.RunExport(t, k.base)
}

func put(t *testing.T, c *apitest.Client, typ, id, body string) {
	t.Helper()
	if r := c.Do("PUT", "/"+typ+"/"+id, []byte(body)); r.Status != 201 && r.Status != 200 {
		t.Fatalf("PUT %s/%s: %d %s", typ, id, r.Status, r.Body)
	}
}

type exportManifest struct {
	Output []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	} `json:"output"`
	Error []json.RawMessage `json:"error"`
}

func pollExport(t *testing.T, c *apitest.Client, path string) exportManifest {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r := c.Do("GET", path, nil, "Accept", "application/json")
		switch r.Status {
		case http.StatusAccepted:
			time.Sleep(100 * time.Millisecond)
		case http.StatusOK:
			var m exportManifest
			if err := json.Unmarshal(r.Body, &m); err != nil || m.Error == nil {
				t.Fatalf("manifest %s: %v", r.Body, err)
			}
			return m
		default:
			t.Fatalf("poll: %d %s", r.Status, r.Body)
		}
	}
	t.Fatal("export did not finish")
	return exportManifest{}
}

func downloadExport(t *testing.T, c *apitest.Client, m exportManifest) []string {
	t.Helper()
	var got []string
	for _, f := range m.Output {
		u, _ := url.Parse(f.URL)
		r := c.Do("GET", u.Path, nil)
		if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/fhir+ndjson") {
			t.Fatalf("GET %s: %d %s", f.URL, r.Status, r.Header.Get("Content-Type"))
		}
		lines := bytes.Split(bytes.TrimSpace(r.Body), []byte("\n"))
		if len(lines) != f.Count {
			t.Errorf("%s: %d lines, count %d", f.URL, len(lines), f.Count)
		}
		for _, l := range lines {
			var res struct{ ResourceType, ID string }
			if err := json.Unmarshal(l, &res); err != nil || res.ResourceType != f.Type {
				t.Fatalf("%s: line %s", f.URL, l)
			}
			got = append(got, res.ResourceType+"/"+res.ID)
		}
	}
	sort.Strings(got)
	return got
}

// TestExportMinPollSetting: --export-min-poll and KILN_EXPORT_MIN_POLL
// set bulk.Config.MinPoll (E-ST-02); 0 turns the check off, a negative
// value stops the server.
func TestExportMinPollSetting(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   string
		args  []string
		want  time.Duration // bulk.Config.MinPoll
		fails bool
	}{
		{name: "default", want: 50 * time.Millisecond},
		{name: "environment", env: "1s", want: time.Second},
		{name: "flag wins", env: "1s", args: []string{"--export-min-poll", "200ms"}, want: 200 * time.Millisecond},
		{name: "off", args: []string{"--export-min-poll", "0s"}, want: -1},
		{name: "negative", args: []string{"--export-min-poll", "-1s"}, fails: true},
		{name: "malformed", env: "often", fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KILN_EXPORT_MIN_POLL", tc.env)
			if tc.env == "" {
				os.Unsetenv("KILN_EXPORT_MIN_POLL")
			}
			var cfg serveConfig
			fs := flag.NewFlagSet("kiln serve", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfg.flags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := cfg.numbersFromEnv(fs)
			if tc.fails != (err != nil) {
				t.Fatalf("error %v, want failure %v", err, tc.fails)
			}
			if got := bulkMinPoll(cfg.exportMinPoll); !tc.fails && got != tc.want {
				t.Errorf("MinPoll %v, want %v", got, tc.want)
			}
		})
	}
}
