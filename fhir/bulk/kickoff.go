package bulk

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/store"
)

// Export levels (export.html#endpoint---system-level-export and the two
// after it).
const (
	levelSystem  = "system"
	levelPatient = "patient"
	levelGroup   = "group"
)

// spec is a job's kick-off, resolved: what the worker exports. It is kept
// in the job (store.Job.Spec) as JSON.
type spec struct {
	Level   string `json:"level"`
	Group   string `json:"group,omitempty"`
	Request string `json:"request"` // the kick-off URL, for the manifest
	Client  string `json:"client,omitempty"`
	// RequiresToken: files are served only with a token (an Authorizer).
	RequiresToken   bool      `json:"requiresToken"`
	TransactionTime time.Time `json:"transactionTime"`
	Since           time.Time `json:"since,omitzero"`
	Types           []string  `json:"types"`
	Elements        []string  `json:"elements,omitempty"`
	// Provenance is includeAssociatedData: provenanceLatest,
	// provenanceRelevant or empty (provenance.go).
	Provenance string `json:"provenance,omitempty"`
	// Format is the output format: formatParquet, or empty for NDJSON.
	Format string `json:"format,omitempty"`
	// Patients confines a Patient or Group export to these patients'
	// compartments (ids); nil with Compartment set means every patient,
	// empty means none. No omitempty: an empty list must survive the
	// job store as [] (an empty Group, or a patient token whose patient
	// is not among those asked), not come back nil and export everyone.
	Compartment bool     `json:"compartment,omitempty"`
	Patients    []string `json:"patients"`
	// Record, for a token confined to one patient, widens the
	// compartment to the patient's record as the REST API confines that
	// token (search.RecordPatients: the compartment and the portal rules,
	// e.g. a Task the patient requested, the PaymentNotice of the
	// patient's Invoice), so that the export holds what its searches
	// would; Base reads absolute references then.
	Record bool   `json:"record,omitempty"`
	Base   string `json:"base,omitempty"`
	// Binaries: a Patient or Group export writes the patients' Binaries
	// as DocumentReferences (binary.go, E-FI-05).
	Binaries bool `json:"binaries,omitempty"`
	// TypeFilter holds each type's _typeFilter queries (OR'd).
	TypeFilter map[string][]string `json:"typeFilter,omitempty"`
	// Ignored are the parameters left out under lenient handling, for the
	// error file (E-PA-08).
	Ignored []outcome.Issue `json:"ignored,omitempty"`
}

// outputFormats are the _outputFormat values accepted: the IG's three
// names of NDJSON (export.html#query-parameters, E-PA-01), and Parquet
// (parquet.go).
var outputFormats = map[string]string{"application/fhir+ndjson": "", "application/ndjson": "", "ndjson": "",
	parquetMediaType: formatParquet, "parquet": formatParquet}

// resultParams may not appear in a _typeFilter query (E-PA-07).
var resultParams = []string{"_include", "_revinclude", "_sort", "_count", "_summary", "_elements", "_total", "_contained", "_containedType", "_page"}

// kickoff is GET or POST [base]/$export, [base]/Patient/$export or
// [base]/Group/[id]/$export (export.html#bulk-data-kick-off-request).
func (h *Handler) kickoff(w http.ResponseWriter, r *http.Request, ep endpoint) error {
	g, err := h.grant(r)
	if err != nil {
		return err
	}
	// The IG lets a server refuse a kick-off without these headers
	// (E-KO-02); refusing makes a client's mistake visible at once.
	if !acceptsFHIRJSON(r.Header.Values("Accept")) {
		return outcome.New(http.StatusBadRequest, outcome.CodeInvalid,
			"a bulk export kick-off needs Accept: application/fhir+json")
	}
	prefer := preferences(r.Header.Values("Prefer"))
	if !prefer["respond-async"] {
		return outcome.New(http.StatusBadRequest, outcome.CodeInvalid,
			"a bulk export kick-off needs Prefer: respond-async")
	}
	strict, lenient := prefer["handling=strict"], prefer["handling=lenient"]

	params, err := h.kickoffParams(r)
	if err != nil {
		return err
	}
	sp := spec{Level: ep.level, Group: ep.id, Client: g.Client,
		RequiresToken: h.cfg.Authorizer != nil, TransactionTime: h.now()}
	base := h.base(r)
	sp.Request, sp.Base = base+r.URL.Path, base
	if r.Method == http.MethodGet && r.URL.RawQuery != "" {
		sp.Request += "?" + r.URL.RawQuery
	}
	k := kickoffParser{h: h, r: r, sp: &sp, grant: g, strict: strict, lenient: lenient}
	if err := k.parse(params); err != nil {
		return err
	}
	if err := h.admit(r); err != nil {
		return err
	}
	body, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	id := uuid.NewString()
	if err := h.st.CreateJob(r.Context(), store.Job{ID: id, Kind: kind, State: store.JobQueued,
		Created: sp.TransactionTime, Spec: body, Progress: "queued"}); err != nil {
		return err
	}
	select {
	case h.wake <- struct{}{}:
	default:
	}
	h.cfg.Logger.Info("bulk export accepted", "job", id, "level", sp.Level, "types", len(sp.Types))
	w.Header().Set("Content-Location", base+statusPath+id)
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(http.StatusAccepted)
	issues := []outcome.Issue{{Severity: outcome.Information, Code: outcome.CodeInformation,
		Diagnostics: "export accepted; poll the Content-Location URL for its status"}}
	w.Write(outcome.Resource(append(issues, sp.Ignored...)))
	return nil
}

// admit refuses a new export while MaxJobs are queued or running
// (export.html: 429 Too Many Requests with Retry-After, E-KO-06).
func (h *Handler) admit(r *http.Request) error {
	jobs, err := h.st.Jobs(r.Context(), kind)
	if err != nil {
		return err
	}
	active := 0
	for _, j := range jobs {
		if j.State == store.JobQueued || j.State == store.JobRunning {
			active++
		}
	}
	if active >= h.cfg.MaxJobs {
		return outcome.Newf(http.StatusTooManyRequests, outcome.CodeTransient,
			"%d exports are already running; try again later", active).
			With("Retry-After", h.retryAfter())
	}
	return nil
}

func acceptsFHIRJSON(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			switch mt {
			case "application/fhir+json", "application/json", "*/*", "application/*":
				return true
			}
		}
	}
	return false
}

// preferences reads Prefer headers (RFC 7240) into a set of
// "respond-async", "handling=strict", …
func preferences(values []string) map[string]bool {
	out := map[string]bool{}
	for _, v := range values {
		for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
			p = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(p), " ", ""))
			out[strings.ReplaceAll(p, `"`, "")] = true
		}
	}
	return out
}

// kickoffParams collects the parameters: the query string, and for POST
// the Parameters body (export.html#post-body). Repeats stay separate
// values; each parameter's reader comma-joins them where the IG says so
// (E-KO-07).
func (h *Handler) kickoffParams(r *http.Request) (url.Values, error) {
	params := r.URL.Query()
	if r.Method != http.MethodPost {
		if params.Has("patient") {
			// export.html#query-parameters: patient is for POST only.
			return nil, outcome.New(http.StatusBadRequest, outcome.CodeNotSupported,
				"the patient parameter is only accepted in a POST Parameters body", "patient")
		}
		return params, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20+1))
	if err != nil {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure, "cannot read the request body")
	}
	if len(body) > 4<<20 {
		return nil, outcome.New(http.StatusRequestEntityTooLarge, outcome.CodeTooCostly, "the Parameters body is larger than 4 MiB")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return params, nil
	}
	var p struct {
		ResourceType string `json:"resourceType"`
		Parameter    []struct {
			Name           string `json:"name"`
			ValueString    *string
			ValueInstant   *string
			ValueDateTime  *string
			ValueCode      *string
			ValueUri       *string
			ValueReference *struct {
				Reference string `json:"reference"`
			}
		} `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure,
			"a POST kick-off body must be a Parameters resource")
	}
	for _, pp := range p.Parameter {
		var v string
		switch {
		case pp.ValueString != nil:
			v = *pp.ValueString
		case pp.ValueInstant != nil:
			v = *pp.ValueInstant
		case pp.ValueDateTime != nil:
			v = *pp.ValueDateTime
		case pp.ValueCode != nil:
			v = *pp.ValueCode
		case pp.ValueUri != nil:
			v = *pp.ValueUri
		case pp.ValueReference != nil:
			v = pp.ValueReference.Reference
		default:
			return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure,
				"parameter "+strconv.Quote(pp.Name)+" has no value", "Parameters.parameter")
		}
		params.Add(pp.Name, v)
	}
	return params, nil
}

// unplus undoes a query string's '+' → ' ' for values that cannot hold a
// space but often hold an unescaped '+': application/fhir+ndjson, and an
// instant's +01:00 offset.
func unplus(v string) string {
	return strings.ReplaceAll(strings.TrimSpace(v), " ", "+")
}

// kickoffParser resolves parameters into a spec.
type kickoffParser struct {
	h               *Handler
	r               *http.Request
	sp              *spec
	grant           Grant
	strict, lenient bool
}

// list comma-joins a parameter's repeats (E-KO-07) and splits the result.
func list(values []string) []string {
	var out []string
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// ignore leaves out what the client asked for under lenient handling, or
// refuses it: unknown parameters are refused only under handling=strict,
// unsupported values (a type, an element) unless handling=lenient
// (export.html#query-parameters, E-PA-03, E-PA-08).
func (k *kickoffParser) ignore(refuseByDefault bool, param, why string) error {
	if k.strict || (refuseByDefault && !k.lenient) {
		return outcome.New(http.StatusBadRequest, outcome.CodeNotSupported, why, param)
	}
	k.sp.Ignored = append(k.sp.Ignored, outcome.Issue{Severity: outcome.Warning, Code: outcome.CodeNotSupported,
		Diagnostics: why + "; ignored", Expression: []string{param}})
	return nil
}

func (k *kickoffParser) parse(params url.Values) error {
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		switch n {
		case "_outputFormat", "_since", "_type", "_elements", "patient", "_typeFilter", "includeAssociatedData":
		default:
			if err := k.ignore(false, n, fmt.Sprintf("parameter %s is not supported by this server's $export", n)); err != nil {
				return err
			}
		}
	}
	if f := params["_outputFormat"]; len(f) > 0 {
		v := unplus(f[len(f)-1])
		format, ok := outputFormats[v]
		if !ok {
			return outcome.Newf(http.StatusBadRequest, outcome.CodeNotSupported,
				"_outputFormat %q is not supported: use application/fhir+ndjson or %s", v, parquetMediaType)
		}
		k.sp.Format = format
	}
	if s := params["_since"]; len(s) > 0 {
		t, err := time.Parse(time.RFC3339Nano, unplus(s[len(s)-1]))
		if err != nil {
			return outcome.New(http.StatusBadRequest, outcome.CodeValue,
				"_since must be a FHIR instant with a time zone (2024-01-31T12:00:00Z)", "_since")
		}
		k.sp.Since = t.UTC()
	}
	if err := k.types(list(params["_type"])); err != nil {
		return err
	}
	if err := k.patients(list(params["patient"])); err != nil {
		return err
	}
	if err := k.elements(list(params["_elements"])); err != nil {
		return err
	}
	if err := k.associatedData(list(params["includeAssociatedData"])); err != nil {
		return err
	}
	if err := k.typeFilters(list(params["_typeFilter"])); err != nil {
		return err
	}
	k.compartmentProvenance(len(params["_type"]) > 0)
	return nil
}

// compartmentProvenance: a Patient or Group export without
// includeAssociatedData holds every Provenance whose target is in the
// patients' compartments (E-PA-06, Bulk Data IG 2.0.0 export.html:
// "include all Provenance resources whose target is in the Patient
// compartment"), where R4's CompartmentDefinition reaches a Provenance
// only through its patient parameter (a target that is the Patient
// itself). Over every compartment type that is RelevantProvenanceResources
// of the exported resources, so that is what it becomes. Not when _type
// names the types, which may leave the targets out, nor with a Provenance
// _typeFilter: there Provenance stays a compartment type like any other.
func (k *kickoffParser) compartmentProvenance(typed bool) {
	if typed || k.sp.Provenance != "" || !k.sp.Compartment || !slices.Contains(k.sp.Types, "Provenance") ||
		len(k.sp.TypeFilter["Provenance"]) > 0 {
		return
	}
	k.sp.Provenance = provenanceRelevant
	k.sp.Types = slices.DeleteFunc(k.sp.Types, func(t string) bool { return t == "Provenance" })
}

// types resolves the exported types: _type, or every type in scope (the
// Patient compartment for Patient and Group exports, E-PA-03), less the
// types the client may not read (E-KO-08).
func (k *kickoffParser) types(asked []string) error {
	k.sp.Compartment = k.sp.Level != levelSystem || k.grant.Patient != ""
	k.sp.Record = k.grant.Patient != ""
	record := k.h.cfg.Registry.RecordTypes()
	inScope := func(t string) bool {
		if k.sp.Record {
			return slices.Contains(record, t)
		}
		return !k.sp.Compartment || len(k.h.cfg.Registry.Compartment("Patient", t)) > 0
	}
	// A patient's Binaries are exported with the DocumentReferences
	// (E-FI-05), to a grant that may read both.
	defer func() {
		k.sp.Binaries = k.sp.Binaries || k.sp.Compartment && !k.sp.Record && slices.Contains(k.sp.Types, "DocumentReference") &&
			k.grant.allows("Binary")
	}()
	if len(asked) == 0 {
		for _, t := range resource.Types() {
			if inScope(t) && k.grant.allows(t) {
				k.sp.Types = append(k.sp.Types, t)
			}
		}
		return nil
	}
	for _, t := range asked {
		switch {
		case !resource.IsType(t):
			if err := k.ignore(true, "_type", fmt.Sprintf("%q is not a FHIR R4 resource type", t)); err != nil {
				return err
			}
		case t == "Binary" && k.sp.Compartment && !k.sp.Record:
			// The patients' Binaries, as DocumentReferences (E-FI-05).
			if !k.grant.allows("Binary") || !k.grant.allows("DocumentReference") {
				return outcome.New(http.StatusForbidden, outcome.CodeForbidden,
					"this client may not read Binary resources, or the DocumentReferences they are exported as")
			}
			k.sp.Binaries = true
		case !inScope(t):
			if err := k.ignore(true, "_type", fmt.Sprintf("%s resources are not in the Patient compartment", t)); err != nil {
				return err
			}
		case !k.grant.allows(t):
			return outcome.Newf(http.StatusForbidden, outcome.CodeForbidden, "this client may not read %s resources", t)
		case !slices.Contains(k.sp.Types, t):
			k.sp.Types = append(k.sp.Types, t)
		}
	}
	return nil
}

// patients resolves the patients of a Patient or Group export: the Group's
// members, narrowed by the patient parameter (E-PA-05) and by a grant
// confined to one patient.
func (k *kickoffParser) patients(asked []string) error {
	ctx := k.r.Context()
	var ids []string
	for _, ref := range asked {
		id, ok := strings.CutPrefix(ref, "Patient/")
		if !ok || !resource.ValidID(id) {
			return outcome.Newf(http.StatusBadRequest, outcome.CodeValue, "patient %q is not a Patient reference (Patient/[id])", ref)
		}
		ids = append(ids, id)
	}
	// A grant confined to one patient may name only that patient, and is
	// refused before any lookup: whether another patient exists or is in
	// a Group is not for it to learn (issue 5).
	if p := k.grant.Patient; p != "" {
		for _, id := range ids {
			if id != p {
				return outcome.New(http.StatusForbidden, outcome.CodeForbidden,
					"this token may export only its own patient's data", "patient")
			}
		}
	}
	if len(ids) > 0 && k.sp.Level == levelSystem {
		return outcome.New(http.StatusBadRequest, outcome.CodeNotSupported,
			"the patient parameter applies to Patient and Group exports, not to a system export", "patient")
	}
	switch k.sp.Level {
	case levelGroup:
		members, err := k.groupMembers()
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !slices.Contains(members, id) {
				return outcome.Newf(http.StatusBadRequest, outcome.CodeValue, "Patient/%s is not a member of Group/%s", id, k.sp.Group)
			}
		}
		if len(ids) == 0 {
			ids = members
		}
		if ids == nil {
			ids = []string{} // an empty group exports nothing, not everyone
		}
	case levelPatient:
		for _, id := range ids {
			if _, err := k.h.st.Read(ctx, "Patient", id); err != nil {
				if store.IsAnswer(err) {
					return outcome.Newf(http.StatusBadRequest, outcome.CodeNotFound, "Patient/%s does not exist", id)
				}
				return err
			}
		}
	}
	if p := k.grant.Patient; p != "" {
		if ids != nil && !slices.Contains(ids, p) {
			ids = []string{}
		} else {
			ids = []string{p}
		}
	}
	if ids != nil {
		slices.Sort(ids)
		k.sp.Patients = slices.Compact(ids)
		if k.sp.Patients == nil {
			k.sp.Patients = []string{}
		}
	}
	return nil
}

// groupMembers reads Group/[id] and returns the ids of its Patient
// members (Group.member.entity), as of the kick-off.
func (k *kickoffParser) groupMembers() ([]string, error) {
	if !resource.ValidID(k.sp.Group) {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeValue, "invalid Group id")
	}
	g, err := k.h.st.Read(k.r.Context(), "Group", k.sp.Group)
	switch {
	case errors.Is(err, store.ErrGone):
		return nil, outcome.Newf(http.StatusGone, outcome.CodeDeleted, "Group/%s was deleted", k.sp.Group)
	case errors.Is(err, store.ErrNotFound):
		return nil, outcome.Newf(http.StatusNotFound, outcome.CodeNotFound, "Group/%s does not exist", k.sp.Group)
	case err != nil:
		return nil, err
	}
	var group struct {
		Member []struct {
			Entity struct {
				Reference string `json:"reference"`
			} `json:"entity"`
			Inactive bool `json:"inactive"`
		} `json:"member"`
	}
	if err := json.Unmarshal(g.Body, &group); err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range group.Member {
		if typ, id, ok := patientRef(m.Entity.Reference); ok && typ == "Patient" && !m.Inactive {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// elements checks _elements (E-PA-04): Type.element or element names.
func (k *kickoffParser) elements(names []string) error {
	for _, n := range names {
		typ, el, dotted := strings.Cut(n, ".")
		if !dotted {
			typ, el = "", n
		}
		if (dotted && !resource.IsType(typ)) || !elementName(el) {
			if err := k.ignore(true, "_elements", fmt.Sprintf("%q is not an element (Type.element or element)", n)); err != nil {
				return err
			}
			continue
		}
		k.sp.Elements = append(k.sp.Elements, n)
	}
	return nil
}

func elementName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// typeFilters checks each _typeFilter query (E-PA-07): Type?query on an
// exported type, parsed as a search, without result parameters.
func (k *kickoffParser) typeFilters(filters []string) error {
	for _, f := range filters {
		typ, query, ok := strings.Cut(f, "?")
		if !ok || !slices.Contains(k.sp.Types, typ) {
			if err := k.ignore(true, "_typeFilter", fmt.Sprintf("%q is not a query (Type?params) on an exported type", f)); err != nil {
				return err
			}
			continue
		}
		if _, err := k.h.filterClauses(typ, query); err != nil {
			return err
		}
		if k.sp.TypeFilter == nil {
			k.sp.TypeFilter = map[string][]string{}
		}
		k.sp.TypeFilter[typ] = append(k.sp.TypeFilter[typ], query)
	}
	return nil
}
