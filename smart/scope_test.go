package smart

import (
	"net/url"
	"reflect"
	"testing"
)

func TestParseScope(t *testing.T) {
	lab := "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	for _, tc := range []struct {
		in   string
		want Scope
		ok   bool
	}{
		{"patient/Observation.read", Scope{Context: "patient", Type: "Observation", Ops: "rs"}, true},
		{"user/*.write", Scope{Context: "user", Type: "*", Ops: "cud"}, true},
		{"system/*.*", Scope{Context: "system", Type: "*", Ops: "cruds"}, true},
		{"patient/Observation.rs", Scope{Context: "patient", Type: "Observation", Ops: "rs"}, true},
		{"user/*.cruds", Scope{Context: "user", Type: "*", Ops: "cruds"}, true},
		{"patient/Patient.r", Scope{Context: "patient", Type: "Patient", Ops: "r"}, true},
		{"patient/Observation.rs?category=" + url.QueryEscape(lab),
			Scope{Context: "patient", Type: "Observation", Ops: "rs", Query: url.Values{"category": {lab}}}, true},
		{"patient/Observation.rs?category=" + lab,
			Scope{Context: "patient", Type: "Observation", Ops: "rs", Query: url.Values{"category": {lab}}}, true},
		// Out of order, unknown or empty letters must not be read as access.
		{"patient/Observation.dus", Scope{}, false},
		{"patient/Observation.rr", Scope{}, false},
		{"patient/Observation.rx", Scope{}, false},
		{"patient/Observation.", Scope{}, false},
		{"patient/observation.rs", Scope{}, false},
		{"practitioner/Observation.rs", Scope{}, false},
		{"patient/Observation.rs?", Scope{}, false},
		{"openid", Scope{}, false},
		{"fhirUser", Scope{}, false},
		{"launch/patient", Scope{}, false},
		{"offline_access", Scope{}, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := ParseScope(tc.in)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			tc.want.Raw = tc.in
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	lab := "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
	for _, tc := range []struct {
		reg, req string
		want     bool
	}{
		{"patient/*.rs", "patient/Observation.rs", true},
		{"patient/*.read", "patient/Observation.r", true},
		{"patient/*.rs", lab, true},
		{lab, lab, true},
		{lab, "patient/Observation.rs", false},
		{"patient/*.rs", "patient/Observation.cruds", false},
		{"patient/*.cruds", "user/Observation.rs", false},
		{"patient/Observation.rs", "patient/Condition.rs", false},
		{"system/*.rs", "system/Patient.read", true},
		{"openid", "openid", true},
		{"launch", "launch/patient", false},
	} {
		if got := covers(tc.reg, tc.req); got != tc.want {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.reg, tc.req, got, tc.want)
		}
	}
	keep, cut := allowed([]string{"openid", "patient/*.rs"}, []string{"openid", "patient/Observation.rs", "user/*.cruds", "openid"})
	if !reflect.DeepEqual(keep, []string{"openid", "patient/Observation.rs"}) || !reflect.DeepEqual(cut, []string{"user/*.cruds"}) {
		t.Errorf("allowed: keep %q cut %q", keep, cut)
	}
}
