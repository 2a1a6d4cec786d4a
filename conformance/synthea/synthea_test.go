package synthea

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	bundles, err := Load("../../testdata/synthea")
	if err != nil {
		t.Fatal(err)
	}
	patients := 0
	for _, b := range bundles {
		for _, e := range b.Entries {
			if e.Type == "Patient" {
				patients++
			}
			if e.FullURL == "" || len(e.Resource) == 0 {
				t.Fatalf("%s: an entry without fullUrl or resource", b.File)
			}
		}
	}
	if len(bundles) != 7 || patients != 7 {
		t.Errorf("%d bundles with %d patients, want 7 and 7", len(bundles), patients)
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("an empty directory loaded without error")
	}
}

// TestRenew checks that a renewed bundle keeps its shape and its
// references inside the bundle, and shares no uuid with the original.
func TestRenew(t *testing.T) {
	files, err := filepath.Glob("../../testdata/synthea/*.json")
	if err != nil || len(files) == 0 {
		t.Fatal("no Synthea bundles", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := Renew(raw)
		if err != nil {
			t.Fatal(err)
		}
		before, after := entries(t, raw), entries(t, fresh)
		if len(after) != len(before) {
			t.Fatalf("%s: %d entries renewed, want %d", f, len(after), len(before))
		}
		urls := map[string]bool{}
		for i, e := range after {
			if e.FullURL == before[i].FullURL {
				t.Errorf("%s entry %d: fullUrl %s kept", f, i, e.FullURL)
			}
			if want := strings.TrimPrefix(e.FullURL, "urn:uuid:"); e.ID != want {
				t.Errorf("%s entry %d: id %s, want %s", f, i, e.ID, want)
			}
			urls[e.FullURL] = true
		}
		refs := 0
		for _, m := range urnRef.FindAll(fresh, -1) {
			refs++
			if u := string(urnRef.FindSubmatch(m)[1]); !urls[u] {
				t.Errorf("%s: reference %s names no entry of the renewed bundle", f, u)
			}
		}
		if want := len(urnRef.FindAll(raw, -1)); refs != want || refs == 0 {
			t.Errorf("%s: %d urn:uuid references renewed, the original has %d", f, refs, want)
		}
		again, err := Renew(raw)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(again, fresh) {
			t.Errorf("%s: two renewals gave the same bytes", f)
		}
	}
	if _, err := Renew([]byte(`{"entry":[{"fullUrl":"Patient/1"}]}`)); err == nil {
		t.Error("a bundle without urn:uuid fullUrls renewed without error")
	}
}

var urnRef = regexp.MustCompile(`"reference":\s*"(urn:uuid:[0-9a-f-]{36})"`)

type renewedEntry struct{ FullURL, ID string }

func entries(t *testing.T, raw []byte) []renewedEntry {
	t.Helper()
	var b struct {
		Entry []struct {
			FullURL  string `json:"fullUrl"`
			Resource struct {
				ID string `json:"id"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	out := make([]renewedEntry, len(b.Entry))
	for i, e := range b.Entry {
		out[i] = renewedEntry{e.FullURL, e.Resource.ID}
	}
	return out
}
