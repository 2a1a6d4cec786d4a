package main

import (
	"net/url"
	"reflect"
	"testing"

	"github.com/kiln-fhir/kiln/fhir/bulk"
	"github.com/kiln-fhir/kiln/smart"
)

func scopes(t *testing.T, raw ...string) []smart.Scope {
	t.Helper()
	var out []smart.Scope
	for _, r := range raw {
		s, ok := smart.ParseScope(r)
		if !ok {
			t.Fatalf("ParseScope(%q) refused", r)
		}
		out = append(out, s)
	}
	return out
}

// TestExportGrant pins how SMART grants become what a bulk export may
// read: export is a whole-type read, so only r without a granular query
// counts, and confinement follows the same user rule as rest.
func TestExportGrant(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    smart.Grant
		want bulk.Grant
		ok   bool
	}{
		{"backend services, every type", smart.Grant{ClientID: "c", Scopes: scopes(t, "system/*.rs")},
			bulk.Grant{Client: "c", ClientID: "c"}, true},
		{"backend services, v1 read of two types", smart.Grant{ClientID: "c", Scopes: scopes(t, "system/Patient.read", "system/Observation.read")},
			bulk.Grant{Client: "c", Types: []string{"Patient", "Observation"}, ClientID: "c"}, true},
		{"write-only scope exports nothing", smart.Grant{ClientID: "c", Scopes: scopes(t, "system/*.cud")},
			bulk.Grant{}, false},
		{"granular scope exports nothing", smart.Grant{ClientID: "c", Scopes: []smart.Scope{{Context: "system", Type: "Observation", Ops: "rs", Query: url.Values{"category": {"laboratory"}}}}},
			bulk.Grant{}, false},
		{"patient scopes confine to the launch patient", smart.Grant{ClientID: "c", Patient: "p1", Scopes: scopes(t, "patient/*.rs")},
			bulk.Grant{Client: "c patient p1", Patient: "p1", ClientID: "c"}, true},
		{"patient scopes without a patient grant nothing", smart.Grant{ClientID: "c", Scopes: scopes(t, "patient/*.rs")},
			bulk.Grant{}, false},
		{"a patient user's user/ scopes confine to that patient", smart.Grant{ClientID: "c", Subject: "u2", FHIRUser: "https://kiln.example/Patient/p2", Scopes: scopes(t, "user/Observation.rs")},
			bulk.Grant{Client: "c user u2 patient p2", Types: []string{"Observation"}, Patient: "p2", ClientID: "c", FHIRUser: "https://kiln.example/Patient/p2"}, true},
		// REST confines them to the linked patients, which bulk.Grant
		// cannot express: nothing rather than everyone.
		{"a practitioner's user/ scopes export nothing", smart.Grant{ClientID: "c", Subject: "d", FHIRUser: "Practitioner/d1", Scopes: scopes(t, "user/*.rs")},
			bulk.Grant{}, false},
		// One app, one user, two EHR launches: each launch patient owns
		// its own exports.
		{"an EHR launch owns its patient's exports", smart.Grant{ClientID: "c", Subject: "d", FHIRUser: "Practitioner/d1", Patient: "p3", Scopes: scopes(t, "patient/*.rs")},
			bulk.Grant{Client: "c user d patient p3", Patient: "p3", ClientID: "c", FHIRUser: "Practitioner/d1"}, true},
		{"a backend service's subject is itself", smart.Grant{ClientID: "c", Subject: "c", Scopes: scopes(t, "system/*.rs")},
			bulk.Grant{Client: "c", ClientID: "c"}, true},
		{"a related person gets nothing yet", smart.Grant{ClientID: "c", FHIRUser: "RelatedPerson/r1", Scopes: scopes(t, "user/*.rs")},
			bulk.Grant{}, false},
		{"system rules win over patient rules", smart.Grant{ClientID: "c", Patient: "p1", Scopes: scopes(t, "patient/*.rs", "system/Patient.rs")},
			bulk.Grant{Client: "c", Types: []string{"Patient"}, ClientID: "c"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := exportGrant(tc.g)
			if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("exportGrant = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
