package apitest

import (
	"os"
	"path/filepath"
	"testing"
)

// InvalidExamples are the official R4 examples that break the base
// specification (wrong reference targets), with the element the
// OperationOutcome must name; Options.Invalid takes them.
var InvalidExamples = map[string]string{
	"DeviceMetric-example.json":        "DeviceMetric.parent",
	"DeviceUseStatement-example.json":  "DeviceUseStatement.reasonReference[0]",
	"MedicationRequest-medrx0301.json": "MedicationRequest.dispenseRequest.performer",
	"Observation-clinical-gender.json": "Observation.performer[0]",
}

// LoadExamples reads every example (*.json) in dir, by file name, for
// Options.Examples.
func LoadExamples(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s: %v", dir, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}
