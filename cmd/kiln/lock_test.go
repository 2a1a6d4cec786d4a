package main

import (
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestSecondServerRefused: the read cache only sees this process's
// writes, so a caching server has the data directory to itself. A second
// `kiln serve` on the same directory, with or without a cache, exits 1
// saying why, and the first keeps serving. Without a cache (--cache 0)
// two servers may share a directory, as SQLite allows.
func TestSecondServerRefused(t *testing.T) {
	data := t.TempDir()
	first := startKiln(t, data)
	for _, extra := range [][]string{nil, {"--cache", "0"}} {
		args := append([]string{"serve", "--auth=none", "--addr", "127.0.0.1:0", "--data", data}, extra...)
		second := spawn(t, nil, args...)
		err := second.wait(startTimeout)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("second kiln serve %v exited with %v, want status 1", extra, err)
		}
		logs := second.logs()
		for _, want := range []string{"another process is using the data directory", "kiln.db.lock"} {
			if !strings.Contains(logs, want) {
				t.Errorf("second kiln serve %v: output %q does not say %q", extra, logs, want)
			}
		}
	}
	if r := first.client(t).Do("GET", "/metadata", nil); r.Status != http.StatusOK {
		t.Fatalf("first server after the refusals: GET /metadata %d", r.Status)
	}
	first.stop()

	a := startKiln(t, data, "--cache", "0")
	b := startKiln(t, data, "--cache", "0")
	created := a.client(t).Do("POST", "/Patient", []byte(`{"resourceType":"Patient"}`))
	if created.Status != http.StatusCreated {
		t.Fatalf("create on the first cacheless server: %d", created.Status)
	}
	loc := created.Header.Get("Location")
	path := loc[strings.Index(loc, "/Patient/"):strings.Index(loc, "/_history")]
	if r := b.client(t).Do("GET", path, nil); r.Status != http.StatusOK {
		t.Errorf("the second cacheless server does not see the first's write: %d", r.Status)
	}
	a.stop()
	b.stop()
}
