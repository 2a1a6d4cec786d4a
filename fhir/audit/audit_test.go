package audit

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// TestChange: each event becomes a valid R4 AuditEvent (change parses it
// with the validating parser) coded as auditevent.html's RESTful examples
// code them, with the patients it concerns as role-1 entities and index
// entries for its search parameters.
func TestChange(t *testing.T) {
	w := newWriter(Config{}, nil) // defaults; the loop (and the store) is not needed

	obsA := []byte(`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"http://kiln.example/fhir/Patient/A"},"performer":[{"reference":"Patient/C"}]}`)
	encB := []byte(`{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/B"}}`)
	patD := []byte(`{"resourceType":"Patient","id":"D"}`)
	org := []byte(`{"resourceType":"Organization","id":"org1","name":"Clinic"}`)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	for _, tc := range []struct {
		name      string
		ev        Event
		action    string
		subtype   string
		outcome   string
		requestor string // who.reference of the requesting agent, or the client id
		target    string
		query     string
		patients  []string
	}{
		{"patient read", Event{Interaction: "read", Status: 200, ClientID: "portal", FHIRUser: "http://kiln.example/fhir/Patient/A", Patient: "A", Target: "Patient/A", Touched: [][]byte{[]byte(`{"resourceType":"Patient","id":"A"}`)}},
			"R", "read", "0", "Patient/A", "Patient/A", "", []string{"Patient/A"}},
		{"practitioner search over two patients", Event{Interaction: "search-type", Status: 200, ClientID: "chart", FHIRUser: "Practitioner/9", Query: "Observation?code=x", Base: "http://kiln.example/fhir", Touched: [][]byte{obsA, encB, org}},
			"E", "search-type", "0", "Practitioner/9", "", "Observation?code=x", []string{"Patient/A", "Patient/B", "Patient/C"}},
		{"backend create", Event{Interaction: "create", Status: 201, ClientID: "loader", Target: "Patient/D/_history/1", Touched: [][]byte{patD}},
			"C", "create", "0", "loader", "Patient/D/_history/1", "", []string{"Patient/D"}},
		{"refused update", Event{Interaction: "update", Status: 403, ClientID: "portal", FHIRUser: "Patient/A", Patient: "A", Target: "Observation/o9"},
			"U", "update", "4", "Patient/A", "Observation/o9", "", []string{"Patient/A"}},
		{"patch", Event{Interaction: "patch", Status: 200, ClientID: "chart", FHIRUser: "Practitioner/9", Target: "Encounter/e1/_history/2", Touched: [][]byte{encB}},
			"U", "patch", "0", "Practitioner/9", "Encounter/e1/_history/2", "", []string{"Patient/B"}},
		{"delete failing in the store", Event{Interaction: "delete", Status: 503, ClientID: "chart", FHIRUser: "Practitioner/9", Target: "Encounter/e1", Touched: [][]byte{encB}},
			"D", "delete", "8", "Practitioner/9", "Encounter/e1", "", []string{"Patient/B"}},
		{"operation", Event{Interaction: "$everything", Status: 200, ClientID: "portal", FHIRUser: "Patient/A", Patient: "A", Target: "Patient/A"},
			"E", "operation", "0", "Patient/A", "Patient/A", "", []string{"Patient/A"}},
		{"history", Event{Interaction: "history-instance", Status: 200, ClientID: "chart", FHIRUser: "Practitioner/9", Target: "Patient/D"},
			"R", "history-instance", "0", "Practitioner/9", "Patient/D", "", []string{"Patient/D"}},
		{"unknown path", Event{Interaction: "unknown", Status: 404, ClientID: "portal", FHIRUser: "Patient/A", Patient: "A"},
			"E", "", "4", "Patient/A", "", "", []string{"Patient/A"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Time = at
			ch, err := w.change(t.Context(), &tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			var ae struct {
				ID       string
				Type     struct{ System, Code string }
				Subtype  []struct{ System, Code string }
				Action   string
				Recorded string
				Outcome  string
				Agent    []struct {
					Who struct {
						Reference  string
						Identifier struct{ System, Value string }
					}
					Requestor bool
				}
				Source struct{ Observer struct{ Display string } }
				Entity []struct {
					What  struct{ Reference string }
					Role  struct{ Code string }
					Query string
				}
			}
			if err := json.Unmarshal(ch.Body, &ae); err != nil {
				t.Fatal(err)
			}
			if ae.ID != ch.ID || ch.Type != "AuditEvent" || ch.Version != 1 {
				t.Errorf("change %s/%s v%d, body id %s", ch.Type, ch.ID, ch.Version, ae.ID)
			}
			if ae.Type.Code != "rest" || ae.Type.System != systemEventType {
				t.Errorf("type %+v, want audit-event-type rest", ae.Type)
			}
			var sub string
			if len(ae.Subtype) == 1 && ae.Subtype[0].System == systemInteraction {
				sub = ae.Subtype[0].Code
			}
			if ae.Action != tc.action || sub != tc.subtype || ae.Outcome != tc.outcome {
				t.Errorf("action %q subtype %q outcome %q, want %q %q %q", ae.Action, sub, ae.Outcome, tc.action, tc.subtype, tc.outcome)
			}
			if ae.Recorded != "2026-01-02T03:04:05Z" {
				t.Errorf("recorded %q", ae.Recorded)
			}
			if ae.Agent[0].Who.Identifier.Value != tc.ev.ClientID {
				t.Errorf("first agent %+v, want the client %s", ae.Agent[0], tc.ev.ClientID)
			}
			var requestors []string
			for _, a := range ae.Agent {
				if a.Requestor {
					requestors = append(requestors, a.Who.Reference+a.Who.Identifier.Value)
				}
			}
			if !slices.Equal(requestors, []string{tc.requestor}) {
				t.Errorf("requestors %v, want [%s]", requestors, tc.requestor)
			}
			if ae.Source.Observer.Display != "Kiln" {
				t.Errorf("source.observer %+v", ae.Source.Observer)
			}
			var target, query string
			var patients []string
			for _, e := range ae.Entity {
				switch e.Role.Code {
				case "4":
					target = e.What.Reference
				case "24":
					q, _ := base64.StdEncoding.DecodeString(e.Query)
					query = string(q)
				case "1":
					patients = append(patients, e.What.Reference)
				}
			}
			if target != tc.target || query != tc.query || !slices.Equal(patients, tc.patients) {
				t.Errorf("entities: target %q query %q patients %v; want %q %q %v", target, query, patients, tc.target, tc.query, tc.patients)
			}
			// The patient search parameter (agent.who and entity.what that
			// are Patients) is indexed: it is what confines patient/ scopes.
			var indexed []string
			for _, e := range ch.Index {
				if e.Param == "patient" {
					indexed = append(indexed, e.Ref)
				}
			}
			for _, p := range tc.patients {
				if !slices.Contains(indexed, p) {
					t.Errorf("patient index entries %v lack %s", indexed, p)
				}
			}
		})
	}
}

// TestRecordNeverBlocks: Record returns at once with the queue full and
// counts what it drops.
func TestRecordNeverBlocks(t *testing.T) {
	// A writer whose loop is not running: nothing is ever taken off the
	// queue.
	w := newWriter(Config{Queue: 2}, nil)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10; i++ {
			w.Record(Event{Interaction: "read"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked on a full queue")
	}
	if got := w.Dropped(); got != 8 {
		t.Errorf("dropped %d, want 8", got)
	}
	// The byte budget drops too, and gives its bytes back.
	w = newWriter(Config{MaxPending: 1000}, nil)
	w.Record(Event{Touched: [][]byte{make([]byte, 2000)}})
	if w.Dropped() != 1 || w.pending.Load() != 0 || len(w.queue) != 0 {
		t.Errorf("over budget: dropped %d, pending %d, queued %d; want 1, 0, 0", w.Dropped(), w.pending.Load(), len(w.queue))
	}
}

// TestChangeJob: an event of an asynchronous operation (bulk export)
// names the operation in a second subtype and the job by its URL (an
// identifier: the status URL is no FHIR resource) with role 20 Job and
// the step as its description; a confined token's patient is still an
// entity and indexed (the patient sees the export in their trail).
func TestChangeJob(t *testing.T) {
	w := newWriter(Config{}, nil)
	const job = "http://kiln.example/fhir/$export-status/j1"
	for _, tc := range []struct {
		name     string
		ev       Event
		patients []string
	}{
		{"backend kick-off", Event{Interaction: "$export", Operation: "export", Status: 202, ClientID: "loader", Job: job, JobStep: "kick-off", Query: "$export?_type=Patient"}, nil},
		{"patient download", Event{Interaction: "$export", Operation: "export", Status: 200, ClientID: "portal", FHIRUser: "Patient/A", Patient: "A", Job: job, JobStep: "download Patient-1.ndjson"}, []string{"Patient/A"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			ch, err := w.change(t.Context(), &tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			var ae struct {
				Action  string
				Subtype []struct{ System, Code string }
				Entity  []struct {
					What struct {
						Reference  string
						Identifier struct{ System, Value string }
					}
					Role        struct{ Code string }
					Description string
				}
			}
			if err := json.Unmarshal(ch.Body, &ae); err != nil {
				t.Fatal(err)
			}
			want := []struct{ System, Code string }{{systemInteraction, "operation"}, {"urn:kiln:operation", "export"}}
			if ae.Action != "E" || !slices.Equal(ae.Subtype, want) {
				t.Errorf("action %s subtype %v, want E %v", ae.Action, ae.Subtype, want)
			}
			var jobs, patients []string
			for _, e := range ae.Entity {
				switch e.Role.Code {
				case "20":
					jobs = append(jobs, e.What.Identifier.System+"|"+e.What.Identifier.Value+" "+e.Description)
				case "1":
					patients = append(patients, e.What.Reference)
				}
			}
			if !slices.Equal(jobs, []string{"urn:ietf:rfc:3986|" + job + " " + tc.ev.JobStep}) {
				t.Errorf("job entities %v", jobs)
			}
			if !slices.Equal(patients, tc.patients) {
				t.Errorf("patients %v, want %v", patients, tc.patients)
			}
			var indexed []string
			for _, e := range ch.Index {
				if e.Param == "patient" {
					indexed = append(indexed, e.Ref)
				}
			}
			if !slices.Equal(indexed, tc.patients) {
				t.Errorf("patient index entries %v, want %v", indexed, tc.patients)
			}
		})
	}
}
