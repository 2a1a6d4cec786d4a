package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeDefaultsToSMART: without --auth the server runs its SMART
// authorization server and refuses untokened FHIR requests (C-RS-01),
// while /metadata and the discovery document stay public and name the
// same endpoints.
func TestServeDefaultsToSMART(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	k := spawn(t, nil, "serve", "--addr", "127.0.0.1:0", "--data", data, "--log-format", "json")
	k.waitServing()
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := hc.Get(k.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	resp, body := get("/Patient")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("GET /Patient without a token: %d, WWW-Authenticate %q; want 401 with a Bearer challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if !strings.Contains(string(body), `"OperationOutcome"`) {
		t.Errorf("401 body is not an OperationOutcome: %s", body)
	}

	resp, body = get("/.well-known/smart-configuration")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("smart-configuration: %d %s", resp.StatusCode, body)
	}
	var conf struct {
		TokenEndpoint         string `json:"token_endpoint"`
		AuthorizationEndpoint string `json:"authorization_endpoint"`
	}
	if err := json.Unmarshal(body, &conf); err != nil {
		t.Fatal(err)
	}
	port := k.base[strings.LastIndexByte(k.base, ':')+1:]
	if want := "http://localhost:" + port + "/auth/token"; conf.TokenEndpoint != want {
		t.Errorf("token_endpoint %q, want %q (the listening port, not the :0 asked for)", conf.TokenEndpoint, want)
	}

	resp, body = get("/metadata")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metadata: %d", resp.StatusCode)
	}
	var cs struct {
		Rest []struct {
			Security struct {
				Service []struct {
					Coding []struct{ Code string } `json:"coding"`
				} `json:"service"`
				Extension []struct {
					URL       string `json:"url"`
					Extension []struct {
						URL      string `json:"url"`
						ValueURI string `json:"valueUri"`
					} `json:"extension"`
				} `json:"extension"`
			} `json:"security"`
		} `json:"rest"`
	}
	if err := json.Unmarshal(body, &cs); err != nil {
		t.Fatal(err)
	}
	uris := map[string]string{}
	for _, e := range cs.Rest[0].Security.Extension {
		if e.URL == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
			for _, x := range e.Extension {
				uris[x.URL] = x.ValueURI
			}
		}
	}
	if uris["token"] != conf.TokenEndpoint || uris["authorize"] != conf.AuthorizationEndpoint {
		t.Errorf("CapabilityStatement oauth-uris %v disagree with smart-configuration %+v", uris, conf)
	}
	if len(cs.Rest[0].Security.Service) == 0 || len(cs.Rest[0].Security.Service[0].Coding) == 0 ||
		cs.Rest[0].Security.Service[0].Coding[0].Code != "SMART-on-FHIR" {
		t.Errorf("security.service is not SMART-on-FHIR: %+v", cs.Rest[0].Security.Service)
	}
}
