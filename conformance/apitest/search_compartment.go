package apitest

// GET [base]/Patient/[id]/* (http.html#search, compartments.html): every
// resource in the patient's compartment, whatever its type, by the
// parameters compartmentdefinition-patient lists for each type. pat2 is
// the subject of DiagnosticReport/102, Observation/bmd,
// RiskAssessment/cardiac and Specimen/sst, and the link.other of
// Patient/pat1; the Patient compartment lists Patient by link only (no
// {def}), so Patient/pat2 itself is not in it.
var pat2Compartment = []string{
	"DiagnosticReport/102", "Observation/bmd", "Patient/pat1", "RiskAssessment/cardiac", "Specimen/sst",
}

func compartmentAllCases() []searchCase {
	return []searchCase{
		{name: "compartment *: every type", query: "Patient/pat2/*", want: pat2Compartment},
		{name: "compartment *: paged", query: "Patient/pat2/*?_count=2", want: pat2Compartment},
		{name: "compartment *: _type narrows", query: "Patient/pat2/*?_type=Observation,Specimen", want: []string{"Observation/bmd", "Specimen/sst"}},
		// xcda: subject of DocumentReference/example, Encounter/xcda and
		// Media/example; List/long holds it as an item, not as subject
		{name: "compartment *: another patient", query: "Patient/xcda/*", want: []string{"DocumentReference/example", "Encounter/xcda", "Media/example"}},
		{name: "compartment *: with a common parameter", query: "Patient/pat2/*?_id=bmd,sst", want: []string{"Observation/bmd", "Specimen/sst"}},
		{name: "compartment *: a patient with nothing", query: "Patient/no-such-patient/*", want: nil},
		// Organization is not in the Patient compartment
		{name: "compartment *: _type outside the compartment", query: "Patient/pat2/*?_type=Organization", status: 400},
		{name: "compartment *: not a compartment", query: "Organization/f001/*", status: 404},
	}
}
