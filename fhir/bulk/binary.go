package bulk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/kiln-fhir/kiln/fhir/fhirpath"
	"github.com/kiln-fhir/kiln/store"
)

// Binary content in Patient and Group exports (E-FI-05; Bulk Data IG
// 2.0.0, export.html: Binary resources associated with patients are
// exported as DocumentReference resources whose content.attachment holds
// the content, with contentType and data or an absolute url).
//
// R4 puts Binary in no compartment; a Binary is a patient's when its
// securityContext references that Patient (binary.html: the resource
// whose access rules apply to the Binary). Each such Binary in scope
// becomes one DocumentReference, written with the type's files:
//
//   - id "binary-" + the Binary's id (or a digest of it past FHIR's 64
//     characters), so that it never takes a stored DocumentReference's id;
//   - status current, subject the Patient, meta.lastUpdated the Binary's;
//   - content[0].attachment: the Binary's contentType, its data as
//     stored (base64), and url, the Binary's absolute URL on this server,
//     which the export's token reads (only a grant that may read Binary
//     gets them: E-FI-02, E-KO-08).
//
// With _since, a deleted Binary of a patient in scope is listed in
// deleted as DocumentReference/binary-[id]. They are not exported for a
// token confined to one patient (patient/ scopes): the REST API gives
// such a token no Binary (no Binary search parameter reaches a patient),
// so the attachment url would not work with it.

// binaryCompartment finds a Binary's patients through securityContext.
var binaryCompartment = func() *compartment {
	e, err := fhirpath.Compile("Binary.securityContext")
	if err != nil {
		panic(err)
	}
	return &compartment{exprs: []*fhirpath.Expression{e}}
}()

// binaryDocID is the id of the DocumentReference standing for Binary id.
func binaryDocID(id string) string {
	if len("binary-")+len(id) <= 64 {
		return "binary-" + id
	}
	sum := sha256.Sum256([]byte(id))
	return "binary-" + hex.EncodeToString(sum[:24])
}

// exportBinaries writes the patients' Binaries as DocumentReferences to
// out, as of transactionTime.
func (x *exporter) exportBinaries(ctx context.Context, out output) error {
	q := store.ScanQuery{Type: "Binary", At: x.sp.TransactionTime, Since: x.sp.Since,
		Deleted: !x.sp.Since.IsZero(), Count: x.h.cfg.pageSize}
	pages, stop := x.scan(ctx, q)
	defer stop()
	for sc := range pages {
		if sc.err != nil {
			return sc.err
		}
		for _, r := range sc.page.Resources {
			in, err := x.inScope(ctx, binaryCompartment, r)
			if err != nil {
				return err
			}
			switch {
			case !in:
			case r.Deleted():
				if err := x.deleteEntry(ctx, "DocumentReference/"+binaryDocID(r.ID)); err != nil {
					return err
				}
			default:
				doc, err := x.binaryDocument(r)
				if err != nil {
					return err
				}
				r.Body = doc
				if err := x.write(ctx, out, "DocumentReference", r); err != nil {
					return err
				}
			}
		}
		if err := x.renew(ctx, "Binary"); err != nil {
			return err
		}
	}
	return out.close(ctx)
}

// binaryDocument is the DocumentReference of Binary r.
func (x *exporter) binaryDocument(r store.Resource) ([]byte, error) {
	var b struct {
		ContentType     string `json:"contentType"`
		Data            string `json:"data"`
		SecurityContext struct {
			Reference string `json:"reference"`
		} `json:"securityContext"`
		Meta struct {
			LastUpdated string `json:"lastUpdated"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		return nil, err
	}
	_, patient, _ := patientRef(b.SecurityContext.Reference)
	type attachment struct {
		ContentType string `json:"contentType,omitempty"`
		Data        string `json:"data,omitempty"`
		URL         string `json:"url"`
	}
	type content struct {
		Attachment attachment `json:"attachment"`
	}
	type reference struct {
		Reference string `json:"reference"`
	}
	lastUpdated := b.Meta.LastUpdated
	if lastUpdated == "" {
		lastUpdated = r.LastUpdated.UTC().Format(time.RFC3339Nano)
	}
	return json.Marshal(struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
		Meta         struct {
			LastUpdated string `json:"lastUpdated"`
		} `json:"meta"`
		Status  string    `json:"status"`
		Subject reference `json:"subject"`
		Content []content `json:"content"`
	}{
		ResourceType: "DocumentReference",
		ID:           binaryDocID(r.ID),
		Meta: struct {
			LastUpdated string `json:"lastUpdated"`
		}{lastUpdated},
		Status:  "current",
		Subject: reference{"Patient/" + patient},
		Content: []content{{attachment{ContentType: b.ContentType, Data: b.Data, URL: x.sp.Base + "/Binary/" + r.ID}}},
	})
}
