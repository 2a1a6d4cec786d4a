package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDynamicRegistrationOnBinary: `kiln client token` mints an initial
// access token beside the running server; with it an app registers at
// the registration_endpoint the discovery document names (RFC 7591 §3),
// once; without it nothing registers.
func TestDynamicRegistrationOnBinary(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	k := spawn(t, nil, "serve", "--addr", "127.0.0.1:0", "--data", data, "--log-format", "json")
	k.waitServing()
	base := "http://localhost" + k.base[strings.LastIndexByte(k.base, ':'):]

	out, err := exec.Command(kilnBinary(t), "client", "token", "--data", data, "--ttl", "10m").Output()
	if err != nil {
		t.Fatalf("kiln client token: %v", err)
	}
	minted := jsonObject(t, out)
	tok, _ := minted["initial_access_token"].(string)
	if exp, err := time.Parse(time.RFC3339, minted["expires_at"].(string)); tok == "" || err != nil || time.Until(exp) > 10*time.Minute || time.Until(exp) < 9*time.Minute {
		t.Fatalf("kiln client token printed %s", out)
	}

	resp, err := http.Get(base + "/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Registration string `json:"registration_endpoint"`
	}
	json.NewDecoder(resp.Body).Decode(&conf)
	resp.Body.Close()
	if conf.Registration != base+"/auth/register" {
		t.Fatalf("registration_endpoint %q", conf.Registration)
	}

	metadata := []byte(`{"client_name":"Binary Registered","redirect_uris":["https://app.example/callback"],"token_endpoint_auth_method":"client_secret_basic"}`)
	register := func(token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, conf.Registration, bytes.NewReader(metadata))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if status, m := register(""); status != http.StatusUnauthorized {
		t.Errorf("without a token: %d %v", status, m)
	}
	status, m := register(tok)
	if status != http.StatusCreated || m["client_id"] == nil || m["client_secret"] == nil {
		t.Fatalf("register: %d %v", status, m)
	}
	if status, m := register(tok); status != http.StatusUnauthorized {
		t.Errorf("token used twice: %d %v", status, m)
	}
	// The registered client authenticates at the token endpoint: a grant
	// it cannot use is unauthorized_client/invalid_grant, not invalid_client.
	req, _ := http.NewRequest(http.MethodPost, base+"/auth/token", strings.NewReader("grant_type=refresh_token&refresh_token=nope"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(m["client_id"].(string), m["client_secret"].(string))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var te map[string]any
	json.NewDecoder(resp.Body).Decode(&te)
	resp.Body.Close()
	if te["error"] == "invalid_client" || resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("the registered client's credentials were refused: %d %v", resp.StatusCode, te)
	}
}
