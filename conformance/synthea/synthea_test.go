package synthea

import "testing"

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
