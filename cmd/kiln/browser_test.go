package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// browserDir holds the browser test's pages, its playwright script and
// (after `npm ci` there) node_modules.
const browserDir = "../../conformance/browser"

// browserTools finds what the browser test needs, or says what is
// missing. .ci/run installs all of it; a developer machine may lack it.
func browserTools() (chromium, node, bundle string, missing string) {
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		return "", "", "", chromium + " is missing (apt-get install chromium)"
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return "", "", "", "node is not on the PATH"
	}
	bundle = filepath.Join(browserDir, "node_modules/fhirclient/build/fhir-client.min.js")
	for _, f := range []string{bundle, filepath.Join(browserDir, "node_modules/playwright-core/package.json")} {
		if _, err := os.Stat(f); err != nil {
			return "", "", "", f + " is missing (npm ci in conformance/browser)"
		}
	}
	return chromium, node, bundle, ""
}

// browserResult is what smart-launch.mjs prints.
type browserResult struct {
	LoginURL      string   `json:"loginURL"`
	LoginAudit    []string `json:"loginAudit"`
	ConsentAudit  []string `json:"consentAudit"`
	ConsentScopes []string `json:"consentScopes"`
	Keyboard      []string `json:"keyboard"`
	Console       []string `json:"console"`
	AppURL        string   `json:"appURL"`
	State         string   `json:"state"`
	Name          string   `json:"name"`
	ID            string   `json:"id"`
	Error         string   `json:"error"`
}

// TestBrowserSMARTLaunch runs the SMART JavaScript client (npm
// fhirclient, its browser build) in headless Debian Chromium through a
// standalone launch against the real binary: the app's page redirects to
// Kiln, the user signs in and approves with the keyboard only, and the
// app, back on its page, exchanges the code (PKCE S256, CORS on the token
// endpoint) and reads the patient (CORS on the FHIR API). The login and
// consent pages are audited on the way (labels, focus, contrast).
//
// KILN_SCREENSHOT=FILE keeps a PNG of the consent page there.
func TestBrowserSMARTLaunch(t *testing.T) {
	chromium, node, bundle, missing := browserTools()
	if missing != "" {
		if os.Getenv("CI") != "" {
			// .ci/run installs these: missing there is a broken CI
			// script, not a reason to pass.
			t.Fatal("CI: " + missing)
		}
		t.Skip(missing)
	}
	js, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	k := startSMARTKiln(t)
	a := k.patients[0]

	// The app: two static pages and the fhirclient bundle, on its own
	// loopback origin (not Kiln's, so CORS is exercised).
	mux := http.NewServeMux()
	for _, page := range []string{"launch.html", "index.html"} {
		b, err := os.ReadFile(filepath.Join(browserDir, page))
		if err != nil {
			t.Fatal(err)
		}
		mux.HandleFunc("GET /"+page, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(b)
		})
	}
	mux.HandleFunc("GET /fhir-client.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(js)
	})
	app := httptest.NewServer(mux)
	defer app.Close()

	reg := k.admin(t, "", "client", "add", "--data", k.data, "--name", "Browser Test App", "--redirect-uri", app.URL+"/index.html", "--public")
	const password = "a browser's password"
	k.admin(t, password+"\n", "user", "add", "--data", k.data, "--username", "patient-a", "--password-stdin", "--fhir-user", "Patient/"+a)

	shot := os.Getenv("KILN_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "consent.png")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "smart-launch.mjs")
	cmd.Dir = browserDir
	cmd.Env = append(os.Environ(),
		"KILN_LAUNCH_URL="+app.URL+"/launch.html?iss="+k.base+"&client_id="+reg["client_id"].(string),
		"KILN_USERNAME=patient-a", "KILN_PASSWORD="+password, "KILN_SCREENSHOT="+shot, "CHROMIUM="+chromium)
	// Its own process group: a timeout kills Chromium with node.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("the browser did not finish within 3 minutes\n%s", stderr.String())
		}
		t.Fatalf("node smart-launch.mjs: %v\n%s", err, stderr.String())
	}
	var res browserResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("smart-launch.mjs printed %q: %v\n%s", out, err, stderr.String())
	}
	t.Logf("browser launch: %v in all", time.Since(start).Round(time.Millisecond))

	if res.Error != "" || res.State != "done" {
		t.Fatalf("the app did not read the patient: state %q, error %s\nconsole: %q", res.State, res.Error, res.Console)
	}
	if want := k.base + "/auth/authorize"; res.LoginURL != want {
		t.Errorf("login page at %s, want Kiln's %s", res.LoginURL, want)
	}
	if res.AppURL != app.URL+"/index.html" {
		t.Errorf("the browser ended on %s, want the app's redirect URI", res.AppURL)
	}
	var p struct {
		Name []struct {
			Given  []string `json:"given"`
			Family string   `json:"family"`
		} `json:"name"`
	}
	if err := json.Unmarshal(k.bodies[0], &p); err != nil || len(p.Name) == 0 {
		t.Fatalf("Synthea patient without a name: %v", err)
	}
	want := strings.Join(append(append([]string{}, p.Name[0].Given...), p.Name[0].Family), " ")
	if res.Name != want || res.ID != a+" "+a {
		t.Errorf("the app shows %q (ids %q), want patient A %q (%s)", res.Name, res.ID, want, a)
	}
	// The requested scopes, and the Observation categories offered in
	// place of patient/Observation.rs (C-SC-07), all audited above.
	for _, sc := range []string{"launch/patient", "openid", "fhirUser", "patient/*.rs", "patient/Observation.rs",
		"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
		"patient/Observation.rs?category=http://hl7.org/fhir/us/core/CodeSystem/us-core-category|sdoh"} {
		if !strings.Contains(" "+strings.Join(res.ConsentScopes, " ")+" ", " "+sc+" ") {
			t.Errorf("consent page offers %q, without %s", res.ConsentScopes, sc)
		}
	}
	for what, problems := range map[string][]string{"login page": res.LoginAudit, "consent page": res.ConsentAudit, "keyboard": res.Keyboard} {
		for _, p := range problems {
			t.Errorf("%s: %s", what, p)
		}
	}
	if b, err := os.ReadFile(shot); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("no PNG screenshot of the consent page at %s: %v", shot, err)
	}
}
