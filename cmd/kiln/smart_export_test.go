package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Bulk export under SMART, against the real binary (issue 5's matrix:
// patient A's token tries to reach patient B's data through bulk export;
// issue 6: user/ and patient/ scopes confine the export to what the token
// may read). The rules the test pins are README "Bulk export",
// Authorization: a patient-confined token exports its own compartment at
// every level, never anyone else's; an export is polled, cancelled and
// downloaded only by the client and user that started it; a scope with a
// granular query grants no export.

// bulkDo is one bulk request with a bearer token ("" for none).
func bulkDo(t *testing.T, method, target, token string) (int, http.Header, []byte) {
	t.Helper()
	return bearerDo(t, method, target, token, "Prefer", "respond-async")
}

// smartExport kicks off path (export.html#bulk-data-kick-off-request)
// with token and polls the status URL to the manifest. It returns the
// status URL too.
func smartExport(t *testing.T, base, path, token string) (string, exportManifest) {
	t.Helper()
	status, h, body := bulkDo(t, http.MethodGet, base+path, token)
	loc := h.Get("Content-Location")
	if status != http.StatusAccepted || loc == "" {
		t.Fatalf("kick-off %s: %d %.500s", path, status, body)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		status, _, body := bulkDo(t, http.MethodGet, loc, token)
		switch status {
		case http.StatusAccepted:
			time.Sleep(100 * time.Millisecond)
		case http.StatusOK:
			var m exportManifest
			if err := json.Unmarshal(body, &m); err != nil || m.Error == nil {
				t.Fatalf("manifest %s: %v", body, err)
			}
			return loc, m
		default:
			t.Fatalf("poll %s: %d %.500s", path, status, body)
		}
	}
	t.Fatalf("export %s did not finish", path)
	return "", exportManifest{}
}

// exportLines downloads every output file of m with token and returns
// its NDJSON lines by type.
func exportLines(t *testing.T, m exportManifest, token string) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	for _, f := range m.Output {
		status, _, body := bulkDo(t, http.MethodGet, f.URL, token)
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %.300s", f.URL, status, body)
		}
		lines := bytes.Split(bytes.TrimSpace(body), []byte("\n"))
		if len(lines) != f.Count {
			t.Errorf("%s: %d lines, manifest count %d", f.URL, len(lines), f.Count)
		}
		out[f.Type] = append(out[f.Type], lines...)
	}
	return out
}

// patientIDs are the ids in a Patient file's lines.
func patientIDs(t *testing.T, lines [][]byte) []string {
	t.Helper()
	var ids []string
	for _, l := range lines {
		var p struct{ ID string }
		if err := json.Unmarshal(l, &p); err != nil {
			t.Fatalf("Patient line %s: %v", l, err)
		}
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return ids
}

func TestSMARTExportOnBinary(t *testing.T) {
	start := time.Now()
	k := startSMARTKiln(t)
	a, b := k.patients[0], k.patients[1]
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})

	// One portal app, used by both patients.
	app := k.admin(t, "", "client", "add", "--data", k.data, "--name", "Portal export", "--redirect-uri", appRedirect, "--public")
	clientID, _ := app["client_id"].(string)
	const password = "correct horse battery staple"
	k.admin(t, password+"\n", "user", "add", "--data", k.data, "--username", "patient-a", "--password-stdin", "--fhir-user", "Patient/"+a)
	k.admin(t, password+"\n", "user", "add", "--data", k.data, "--username", "patient-b", "--password-stdin", "--fhir-user", "Patient/"+b)
	cfg := &oauth2.Config{
		ClientID: clientID, RedirectURL: appRedirect,
		Scopes:   []string{"launch/patient", "patient/*.rs"},
		Endpoint: oauth2.Endpoint{AuthURL: k.base + "/auth/authorize", TokenURL: k.base + "/auth/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	tokA := k.launchToken(t, ctx, cfg, "patient-a", password)
	tokB := k.launchToken(t, ctx, cfg, "patient-b", password)
	if tokA.Extra("patient") != a || tokB.Extra("patient") != b {
		t.Fatalf("launch patients %v, %v; want %s, %s", tokA.Extra("patient"), tokB.Extra("patient"), a, b)
	}

	bs := k.backendService(t, "Bulk export E2E", "system/*.rs system/Group.cu")
	sysAll := bs.token(t, ctx, "system/*.rs")

	// A Group holding only B, written by the backend client.
	groupBody := `{"resourceType":"Group","id":"only-b","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/` + b + `"}}]}`
	req, _ := http.NewRequest(http.MethodPut, k.base+"/Group/only-b", strings.NewReader(groupBody))
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+bs.token(t, ctx, "system/Group.cu"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT Group/only-b: %d %s", resp.StatusCode, body)
	}

	// The backend client's system export: the reference point, and the
	// export patient A's token then tries to reach.
	sysStatus, sysManifest := smartExport(t, k.base, "/$export", sysAll)
	sysLines := exportLines(t, sysManifest, sysAll)
	if got, want := patientIDs(t, sysLines["Patient"]), slices.Sorted(slices.Values(k.patients)); !slices.Equal(got, want) {
		t.Fatalf("system export Patients %v, want %v", got, want)
	}
	if len(sysLines) < 3 {
		t.Fatalf("system export holds only %d types", len(sysLines))
	}

	var aStatus string
	var aManifest exportManifest
	t.Run("patient A's token exports A's compartment only", func(t *testing.T) {
		// Every level is confined to A's compartment (README "Bulk
		// export"): B's id appears in no line, A's Patient is the only
		// Patient, and everything exported is A's (every compartment
		// resource names A).
		for _, tc := range []struct {
			path  string
			empty bool // the level selects no patient of A's
		}{
			{"/$export", false},
			{"/Patient/$export", false},
			{"/Group/only-b/$export", true},
		} {
			loc, m := smartExport(t, k.base, tc.path, tokA.AccessToken)
			if tc.path == "/Patient/$export" {
				aStatus, aManifest = loc, m
			}
			lines := exportLines(t, m, tokA.AccessToken)
			n := 0
			for typ, ls := range lines {
				for _, l := range ls {
					n++
					if bytes.Contains(l, []byte(b)) {
						t.Errorf("%s: patient B's id in a %s line: %.200s", tc.path, typ, l)
					}
					if !bytes.Contains(l, []byte(a)) {
						t.Errorf("%s: a %s line not about patient A: %.200s", tc.path, typ, l)
					}
				}
			}
			if tc.empty {
				if n != 0 {
					t.Errorf("%s: %d lines for a Group without A, want none", tc.path, n)
				}
				continue
			}
			if got := patientIDs(t, lines["Patient"]); !slices.Equal(got, []string{a}) {
				t.Errorf("%s: Patients %v, want only %s", tc.path, got, a)
			}
			if len(lines) < 2 || len(lines["Observation"]) == 0 {
				t.Errorf("%s: types %d, Observations %d: want A's whole compartment", tc.path, len(lines), len(lines["Observation"]))
			}
			if len(lines["Observation"]) >= len(sysLines["Observation"]) {
				t.Errorf("%s: %d Observations, as many as the system export's %d", tc.path, len(lines["Observation"]), len(sysLines["Observation"]))
			}
		}
	})

	t.Run("patient A's token names patient B", func(t *testing.T) {
		// export.html#query-parameters, patient (POST): naming another
		// patient is refused before any lookup, B existing or not.
		for _, tc := range []struct{ path, patient string }{
			{"/Patient/$export", b}, {"/Patient/$export", "no-such-patient"}, {"/Group/only-b/$export", b},
		} {
			params := `{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/` + tc.patient + `"}}]}`
			req, _ := http.NewRequest(http.MethodPost, k.base+tc.path, strings.NewReader(params))
			req.Header.Set("Accept", "application/fhir+json")
			req.Header.Set("Prefer", "respond-async")
			req.Header.Set("Content-Type", "application/fhir+json")
			req.Header.Set("Authorization", "Bearer "+tokA.AccessToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s patient=Patient/%s with A's token: %d %.300s", tc.path, tc.patient, resp.StatusCode, body)
			}
		}
	})

	t.Run("patient A's token cannot reach another's export", func(t *testing.T) {
		// export.html#bulk-data-output-file-request: files are protected
		// like the kick-off; only who started an export sees it. Patient
		// B uses the same app as A: the client alone does not own a job.
		for _, tc := range []struct {
			who, token, status string
			m                  exportManifest
		}{
			{"patient A on the backend client's export", tokA.AccessToken, sysStatus, sysManifest},
			{"patient B on patient A's export", tokB.AccessToken, aStatus, aManifest},
		} {
			if tc.status == "" {
				t.Fatalf("%s: no export to try", tc.who)
			}
			if status, _, body := bulkDo(t, http.MethodGet, tc.status, tc.token); status != http.StatusForbidden && status != http.StatusNotFound {
				t.Errorf("%s: poll %d %.300s", tc.who, status, body)
			}
			for _, f := range tc.m.Output {
				status, _, body := bulkDo(t, http.MethodGet, f.URL, tc.token)
				if status != http.StatusForbidden && status != http.StatusNotFound || bytes.Contains(body, []byte(`"resourceType":"`+f.Type+`"`)) {
					t.Errorf("%s: GET %s: %d %.200s", tc.who, f.URL, status, body)
				}
			}
			if status, _, body := bulkDo(t, http.MethodDelete, tc.status, tc.token); status != http.StatusForbidden && status != http.StatusNotFound {
				t.Errorf("%s: cancel %d %.300s", tc.who, status, body)
			}
		}
		// Nothing was cancelled: the owners still read their exports.
		if status, _, _ := bulkDo(t, http.MethodGet, sysStatus, sysAll); status != http.StatusOK {
			t.Errorf("backend client's export after A's cancel: %d", status)
		}
		if status, _, _ := bulkDo(t, http.MethodGet, aStatus, tokA.AccessToken); status != http.StatusOK {
			t.Errorf("A's export after B's cancel: %d", status)
		}
	})

	t.Run("no token", func(t *testing.T) {
		// RFC 6750 §3 on every bulk URL.
		targets := []string{k.base + "/$export", k.base + "/Patient/$export", k.base + "/Group/only-b/$export", sysStatus}
		for _, f := range sysManifest.Output {
			targets = append(targets, f.URL)
		}
		for _, u := range targets {
			status, h, body := bulkDo(t, http.MethodGet, u, "")
			if status != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("GET %s without a token: %d %q", u, status, h.Get("WWW-Authenticate"))
			}
			if bytes.Contains(body, []byte(a)) || bytes.Contains(body, []byte(b)) {
				t.Errorf("GET %s without a token leaked a patient id", u)
			}
		}
	})

	t.Run("system/Patient.rs exports Patients only", func(t *testing.T) {
		tok := bs.token(t, ctx, "system/Patient.rs")
		_, m := smartExport(t, k.base, "/$export", tok)
		lines := exportLines(t, m, tok)
		if len(lines) != 1 || len(lines["Patient"]) != 2 {
			t.Errorf("system/Patient.rs export: types %d, Patients %d; want only the 2 Patients", len(lines), len(lines["Patient"]))
		}
		// Naming a type the token may not read is refused, not emptied
		// (fhir/bulk kickoff.go types, E-KO-08).
		for _, path := range []string{"/$export?_type=Observation", "/$export?_type=Patient,Observation", "/Patient/$export?_type=Observation"} {
			if status, _, body := bulkDo(t, http.MethodGet, k.base+path, tok); status != http.StatusForbidden {
				t.Errorf("%s with system/Patient.rs: %d %.300s", path, status, body)
			}
		}
	})

	t.Run("a granular scope grants no export", func(t *testing.T) {
		// A whole-type export cannot honour a query restriction, so such
		// a scope grants nothing (cmd/kiln/auth.go exportAuthorizer).
		granular := *cfg
		granular.Scopes = []string{"launch/patient", "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}
		tok := k.launchToken(t, ctx, &granular, "patient-a", password)
		if sc, _ := tok.Extra("scope").(string); !strings.Contains(sc, "?category=") || strings.Contains(sc, "*.rs") {
			t.Fatalf("granted scope %q: want the granular scope only", sc)
		}
		for _, path := range []string{"/$export", "/Patient/$export", "/Group/only-b/$export", "/$export?_type=Observation"} {
			if status, _, body := bulkDo(t, http.MethodGet, k.base+path, tok.AccessToken); status != http.StatusForbidden {
				t.Errorf("%s with a granular scope: %d %.300s", path, status, body)
			}
		}
	})
	t.Run("exports are in the audit trail", func(t *testing.T) {
		// fhir/bulk audit.go: kick-off, status and download made with a
		// token are AuditEvents (subtype export, entity the job's status
		// URL) written by the REST API's writer; a patient-confined
		// export carries the patient, who finds it with their own token
		// (patient/*.rs) and finds nobody else's.
		steps := func(token string) map[string][]string {
			t.Helper()
			out := map[string][]string{} // job URL → "client step"
			status, _, body := bulkDo(t, http.MethodGet, k.base+"/AuditEvent?subtype=export&_count=1000", token)
			if status != http.StatusOK {
				t.Fatalf("AuditEvent search: %d %.300s", status, body)
			}
			var bundle struct {
				Entry []struct {
					Resource struct {
						Agent []struct {
							Who struct{ Identifier struct{ Value string } }
						}
						Entity []struct {
							What        struct{ Identifier struct{ Value string } }
							Role        struct{ Code string }
							Description string
						}
					}
				}
			}
			if err := json.Unmarshal(body, &bundle); err != nil {
				t.Fatal(err)
			}
			for _, e := range bundle.Entry {
				for _, en := range e.Resource.Entity {
					if en.Role.Code == "20" {
						out[en.What.Identifier.Value] = append(out[en.What.Identifier.Value], e.Resource.Agent[0].Who.Identifier.Value+" "+en.Description)
					}
				}
			}
			return out
		}
		want := func(client string, m exportManifest) []string {
			w := []string{client + " kick-off", client + " status"}
			for _, f := range m.Output {
				w = append(w, client+" download "+f.URL[strings.LastIndexByte(f.URL, '/')+1:])
			}
			return w
		}
		bsID := bs.id
		var mine, all map[string][]string
		deadline := time.Now().Add(15 * time.Second)
		for {
			mine, all = steps(tokA.AccessToken), steps(sysAll)
			if !slices.ContainsFunc(want(bsID, sysManifest), func(s string) bool { return !slices.Contains(all[sysStatus], s) }) &&
				!slices.ContainsFunc(want(clientID, aManifest), func(s string) bool { return !slices.Contains(mine[aStatus], s) }) ||
				time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, s := range want(clientID, aManifest) {
			if !slices.Contains(mine[aStatus], s) {
				t.Errorf("patient A's audit trail lacks %q of their export: %v", s, mine[aStatus])
			}
		}
		for job, ss := range mine {
			for _, s := range ss {
				if !strings.HasPrefix(s, clientID+" ") {
					t.Errorf("patient A's audit trail holds %q on %s, not the portal's", s, job)
				}
			}
		}
		for _, s := range want(bsID, sysManifest) {
			if !slices.Contains(all[sysStatus], s) {
				t.Errorf("the backend client's export lacks %q: %v", s, all[sysStatus])
			}
		}
		// The kick-offs refused with 403 (a granular scope, above) are
		// in the trail too, as failures of the portal client
		// (cmd/kiln/bulkaudit.go).
		status, _, body := bulkDo(t, http.MethodGet, k.base+"/AuditEvent?subtype=export&_count=1000", sysAll)
		var bundle struct {
			Entry []struct {
				Resource struct {
					Outcome string
					Agent   []struct {
						Who struct{ Identifier struct{ Value string } }
					}
				}
			}
		}
		if status != http.StatusOK || json.Unmarshal(body, &bundle) != nil {
			t.Fatalf("AuditEvent search: %d %.300s", status, body)
		}
		refused := 0
		for _, e := range bundle.Entry {
			if e.Resource.Outcome != "0" && len(e.Resource.Agent) > 0 && e.Resource.Agent[0].Who.Identifier.Value == clientID {
				refused++
			}
		}
		if refused < 4 {
			t.Errorf("%d refused export requests of %s audited, want the 4 kick-offs refused with 403", refused, clientID)
		}
	})
	t.Logf("TestSMARTExportOnBinary: %v", time.Since(start).Round(time.Millisecond))
}
