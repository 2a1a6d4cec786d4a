package rest

// US Core 3.1.0, the version ONC's (g)(10) criterion and the Inferno US
// Core kit test (checklist A-CS-06): the server CapabilityStatement Kiln
// instantiates, and the profiles it lists per resource type
// (CapabilityStatement-us-core-server.json, rest.resource.supportedProfile).
// Kiln serves every search the US Core server statement asks for (its
// SearchParameters are built in: conformance/defs, and the corpus covers
// the required combinations) and stores what conforms to these profiles
// as it stores any valid R4 resource; it does not check the profiles'
// extra constraints on write, which the README says.
const usCoreServer = "http://hl7.org/fhir/us/core/CapabilityStatement/us-core-server|3.1.0"

const usCoreSD = "http://hl7.org/fhir/us/core/StructureDefinition/"

var usCoreProfiles = map[string][]string{
	"AllergyIntolerance": {usCoreSD + "us-core-allergyintolerance"},
	"CarePlan":           {usCoreSD + "us-core-careplan"},
	"CareTeam":           {usCoreSD + "us-core-careteam"},
	"Condition":          {usCoreSD + "us-core-condition"},
	"Device":             {usCoreSD + "us-core-implantable-device"},
	"DiagnosticReport":   {usCoreSD + "us-core-diagnosticreport-note", usCoreSD + "us-core-diagnosticreport-lab"},
	"DocumentReference":  {usCoreSD + "us-core-documentreference"},
	"Encounter":          {usCoreSD + "us-core-encounter"},
	"Goal":               {usCoreSD + "us-core-goal"},
	"Immunization":       {usCoreSD + "us-core-immunization"},
	"Location":           {usCoreSD + "us-core-location"},
	"Medication":         {usCoreSD + "us-core-medication"},
	"MedicationRequest":  {usCoreSD + "us-core-medicationrequest"},
	"Observation": {usCoreSD + "us-core-smokingstatus", usCoreSD + "pediatric-weight-for-height",
		usCoreSD + "us-core-observation-lab", usCoreSD + "pediatric-bmi-for-age", usCoreSD + "us-core-pulse-oximetry"},
	"Organization":     {usCoreSD + "us-core-organization"},
	"Patient":          {usCoreSD + "us-core-patient"},
	"Practitioner":     {usCoreSD + "us-core-practitioner"},
	"PractitionerRole": {usCoreSD + "us-core-practitionerrole"},
	"Procedure":        {usCoreSD + "us-core-procedure"},
	"Provenance":       {usCoreSD + "us-core-provenance"},
}
