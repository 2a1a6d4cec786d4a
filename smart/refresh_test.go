package smart

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestRefreshNarrowerScope: a refresh may ask for less than the grant
// (RFC 6749 §6; app-launch.html#step-5-later-app-uses-a-refresh-token).
// The new access token carries only what was asked for, at the FHIR API
// and at introspection; the rotated refresh token keeps the grant's
// scope, so a later refresh without scope gets all of it back; a scope
// the grant does not cover is invalid_scope and spends nothing.
func TestRefreshNarrowerScope(t *testing.T) {
	e := newEnv(t, nil)
	e.user("alice", "Patient/p1")
	app := e.client(ClientSpec{})
	rs := e.client(ClientSpec{Name: "Resource server"}) // introspects
	granted := "launch/patient openid fhirUser offline_access patient/*.rs"
	tok := e.standalone(e.oauth(app, strings.Fields(granted)...), "alice", nil)
	if tok.Extra("scope") != granted {
		t.Fatalf("granted %v, want %q", tok.Extra("scope"), granted)
	}
	rt := tok.RefreshToken

	refresh := func(scope string) (int, map[string]any) {
		t.Helper()
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if scope != "" {
			form.Set("scope", scope)
		}
		status, _, body := e.postForm("/auth/token", form, app.ClientID, app.ClientSecret)
		if status == 200 {
			rt, _ = body["refresh_token"].(string)
		}
		return status, body
	}
	// resourceScopes are the resource scopes the API sees for an access
	// token, and its scope at introspection.
	resourceScopes := func(at string) ([]string, string) {
		t.Helper()
		g, status := e.whoami(at)
		if status != 200 {
			t.Fatalf("whoami: %d", status)
		}
		var raw []string
		for _, s := range g.Scopes {
			raw = append(raw, s.Raw)
		}
		slices.Sort(raw)
		_, _, in := e.postForm("/auth/introspect", url.Values{"token": {at}}, rs.ClientID, rs.ClientSecret)
		scope, _ := in["scope"].(string)
		return raw, scope
	}

	for _, tc := range []struct {
		name, ask string
		want      []string // resource scopes of the new access token
		wantScope string   // its scope (token response, introspection)
	}{
		// Asked for exactly part of the grant.
		{"subset", "launch/patient patient/*.rs", []string{"patient/*.rs"}, "launch/patient patient/*.rs"},
		// Within a granted scope though not granted verbatim.
		{"within a granted scope", "patient/Observation.rs patient/Patient.r", []string{"patient/Observation.rs", "patient/Patient.r"}, "patient/Observation.rs patient/Patient.r"},
		// The rotated refresh token kept the whole grant.
		{"omitted: the grant", "", []string{"patient/*.rs"}, granted},
		{"all of it, reordered", "patient/*.rs offline_access fhirUser openid launch/patient", []string{"patient/*.rs"}, granted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := refresh(tc.ask)
			if status != 200 || body["scope"] != tc.wantScope || body["refresh_token"] == nil || body["patient"] != "p1" {
				t.Fatalf("refresh with %q: %d %v, want scope %q", tc.ask, status, body, tc.wantScope)
			}
			got, scope := resourceScopes(body["access_token"].(string))
			if !slices.Equal(got, tc.want) || scope != tc.wantScope {
				t.Errorf("access token reaches %v (introspected scope %q), want %v (%q)", got, scope, tc.want, tc.wantScope)
			}
			// The refresh token itself keeps the grant's scope.
			_, _, in := e.postForm("/auth/introspect", url.Values{"token": {rt}}, rs.ClientID, rs.ClientSecret)
			if in["scope"] != granted {
				t.Errorf("rotated refresh token introspected with scope %v, want %q", in["scope"], granted)
			}
		})
	}

	for _, ask := range []string{
		"patient/*.cruds",              // more letters
		"patient/*.rs patient/*.cruds", // part within, part not
		"user/*.rs",                    // another context
		"launch/patient online_access", // a non-resource scope not granted
	} {
		status, body := refresh(ask)
		if status != 400 || body["error"] != "invalid_scope" {
			t.Errorf("refresh with %q: %d %v, want 400 invalid_scope", ask, status, body)
		}
	}
	// A refused refresh spent nothing: the refresh token still works.
	if status, body := refresh(""); status != 200 || body["scope"] != granted {
		t.Errorf("refresh after the refused ones: %d %v", status, body)
	}
}
