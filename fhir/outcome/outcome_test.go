package outcome

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	secret := errors.New("disk /var/lib/kiln is full; patient Jane Doe")
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		code       string
		expr       string
		header     string
		mustNotSay string
	}{
		{"fhir error", New(http.StatusBadRequest, CodeValue, "bad date", "Patient.birthDate"), 400, CodeValue, "Patient.birthDate", "", ""},
		{"wrapped fhir error", fmt.Errorf("create: %w", New(http.StatusNotFound, CodeNotFound, "nope")), 404, CodeNotFound, "", "", ""},
		{"header", New(http.StatusGone, CodeDeleted, "gone").With("ETag", `W/"2"`), 410, CodeDeleted, "", `W/"2"`, ""},
		{"unknown error hides its cause", secret, 500, CodeException, "", "", "Jane"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			Write(w, tc.err)
			if w.Code != tc.status {
				t.Errorf("status %d, want %d", w.Code, tc.status)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/fhir+json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			var oo struct {
				ResourceType string  `json:"resourceType"`
				Issue        []Issue `json:"issue"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &oo); err != nil {
				t.Fatal(err)
			}
			if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Code != tc.code || oo.Issue[0].Severity != SevError {
				t.Fatalf("body %s", w.Body)
			}
			if tc.expr != "" && (len(oo.Issue[0].Expression) != 1 || oo.Issue[0].Expression[0] != tc.expr) {
				t.Errorf("expression %v, want %s", oo.Issue[0].Expression, tc.expr)
			}
			if tc.header != "" && w.Header().Get("ETag") != tc.header {
				t.Errorf("ETag %q", w.Header().Get("ETag"))
			}
			if tc.mustNotSay != "" && strings.Contains(w.Body.String(), tc.mustNotSay) {
				t.Errorf("500 leaks its cause: %s", w.Body)
			}
		})
	}
}

func TestWrapKeepsCause(t *testing.T) {
	cause := errors.New("cause")
	e := New(http.StatusConflict, CodeConflict, "x").Wrap(cause)
	if !errors.Is(e, cause) {
		t.Error("errors.Is does not see the cause")
	}
	if e.LogString() != "409 conflict" {
		t.Errorf("LogString %q", e.LogString())
	}
}
