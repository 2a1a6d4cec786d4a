package sqlite

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-fhir/kiln/conformance/storetest"
)

// TestTwoProcesses: two stores on one file stand for two processes;
// storetest runs the job claims and one-time records across them.
func TestTwoProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	a, b := openPath(t, path), openPath(t, path)
	defer a.Close()
	defer b.Close()
	storetest.TwoProcesses(t, a, b)
}

// TestScanPlan: a scan page seeks current_id and walks it in id order (no
// sort), and finds an older version through versions_instance.
func TestScanPlan(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	plan := explainArgs(t, s, frag{scanSQL, []any{int64(0), "Patient", "", int64(0), false, 10}})
	t.Log(plan)
	for _, want := range []string{"current_id", "versions_instance"} {
		if !strings.Contains(plan, want) {
			t.Errorf("scan plan does not use %s: %s", want, plan)
		}
	}
	if strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("scan sorts: %s", plan)
	}
}
