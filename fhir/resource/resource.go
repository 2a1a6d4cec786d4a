// Package resource parses and validates FHIR R4 resources with
// github.com/google/fhir/go and produces the canonical JSON Kiln stores.
//
// A resource is parsed once, on write. The canonical bytes produced here
// (google/fhir's compact JSON, whose properties are in alphabetical order,
// with resourceType moved first in every resource, and id and
// meta.versionId/lastUpdated set by the server) are what the store keeps
// and what reads serve, without another trip through protos: Summary and
// Elements subset them as bytes.
package resource

import (
	"cmp"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	d4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/kiln-fhir/kiln/fhir/jsonvalue"
	"github.com/kiln-fhir/kiln/fhir/outcome"
)

// codec holds google/fhir's unmarshaller and marshaller, which keep no
// per-call state and are safe for concurrent use.
type codec struct {
	um *jsonformat.Unmarshaller
	m  *jsonformat.Marshaller
}

var theCodec = sync.OnceValue(func() codec {
	um, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		panic(fmt.Sprintf("resource: unmarshaller: %v", err))
	}
	// Guards against stack exhaustion from hostile nesting; the deepest
	// official example is far below this.
	um.MaxNestingDepth = 64
	m, err := jsonformat.NewMarshaller(false, "", "", fhirversion.R4)
	if err != nil {
		panic(fmt.Sprintf("resource: marshaller: %v", err))
	}
	return codec{um: um, m: m}
})

// Resource is a parsed, validated resource ready to be stamped and stored.
type Resource struct {
	Type string
	// ID is the id the body carried ("" when none).
	ID string
	cr *bcrpb.ContainedResource
	// tmpl is the canonical JSON with placeholder id/meta values, made by
	// Parse from the body (valueTemplate) or else by the first Stamp from
	// the proto (stampTemplate); Stamps splice into it.
	tmpl *template
	// val is the body decoded with encoding/json and UseNumber when tmpl
	// was made from it, else nil. Stamp sets its id and meta to the values
	// it stamped, so that val is what decoding Stamp's result would give.
	val     map[string]any
	stamped bool // val holds a Stamp's values, not the placeholders
}

// Parse validates body as a FHIR R4 resource. Every problem found is
// reported in the returned *outcome.Error (status 400), each issue with the
// FHIRPath of the element in expression.
func Parse(body []byte) (*Resource, error) { return ParseValue(body, nil) }

// ParseValue is Parse for a body the caller has already decoded: v, when
// not nil, must be what encoding/json with UseNumber decodes body to (as
// fhir/bundle.RewriteValue returns it); the Resource keeps it (Decoded), so
// the caller must not use it afterwards.
func ParseValue(body []byte, v any) (*Resource, error) { return parse(body, v, true) }

// parse is ParseValue; fromBody false keeps the proto and leaves the
// canonical JSON to google/fhir's marshal, the reference the body path is
// tested against.
func parse(body []byte, v any, fromBody bool) (*Resource, error) {
	issues, err := checkShape(body, v != nil)
	if err != nil {
		return nil, err
	}
	rep := &reporter{}
	msg, err := theCodec().um.UnmarshalWithErrorReporter(body, rep)
	if err != nil || len(issues) > 0 || len(rep.issues) > 0 {
		return nil, invalid(issues, append(parseIssues(err), rep.issues...))
	}
	cr, ok := msg.(*bcrpb.ContainedResource)
	if !ok {
		return nil, fmt.Errorf("resource: unexpected message %T", msg)
	}
	res := resourceOf(cr)
	if res == nil {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure, "no resource in body")
	}
	r := &Resource{Type: string(res.Descriptor().Name()), cr: cr}
	if idf := res.Descriptor().Fields().ByName("id"); idf != nil && res.Has(idf) {
		r.ID = res.Get(idf).Message().Interface().(*d4pb.Id).GetValue()
	}
	// The canonical JSON from the body itself when it can be (encode.go);
	// the proto is then no longer needed.
	if v == nil && fromBody {
		if v, err = jsonvalue.Decode(body); err != nil {
			v = nil
		}
	}
	if m, _ := v.(map[string]any); m != nil {
		if t, ok := valueTemplate(m, len(body)+64); ok {
			r.tmpl, r.val, r.cr = t, m, nil
			return r, nil
		}
	}
	utcZones(res)
	return r, nil
}

// resourceOf returns the resource inside the ContainedResource oneof.
func resourceOf(cr *bcrpb.ContainedResource) protoreflect.Message {
	m := cr.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("oneof_resource"))
	if fd == nil {
		return nil
	}
	return m.Mutable(fd).Message()
}

// Stamp sets id, meta.versionId and meta.lastUpdated (replacing whatever
// the client sent: http.html#create ignores them) and returns the canonical
// JSON. The rest of meta (profile, security, tag, source) is kept. A
// Resource may be stamped more than once (a write retried with the next
// version): each call starts from the resource as parsed.
func (r *Resource) Stamp(id string, version int64, lastUpdated time.Time) ([]byte, error) {
	if r.tmpl == nil {
		t, err := r.stampTemplate()
		if err != nil {
			return nil, err
		}
		r.tmpl = t
	}
	text := id
	if !plainID(id) {
		// Not an id the REST layer accepts ([A-Za-z0-9\-\.]{1,64}): put
		// it in as encoding/json, which both marshals use, writes it.
		q := appendString(nil, id)
		text = string(q[1 : len(q)-1])
	}
	return r.fill(text, id, version, lastUpdated), nil
}

// fill stamps the template: text is id as written in JSON.
func (r *Resource) fill(text, id string, version int64, lastUpdated time.Time) []byte {
	v, at := strconv.FormatInt(version, 10), instant(lastUpdated)
	r.ID = id
	if r.val != nil {
		r.val["id"] = id
		meta := r.val["meta"].(map[string]any) // set by valueTemplate
		meta["versionId"], meta["lastUpdated"] = v, at
		r.stamped = true
	}
	return r.tmpl.fill(text, v, at)
}

// Decoded is the JSON value of what the last Stamp returned, as
// encoding/json with UseNumber decodes it, or nil when it is not at hand
// (the resource took the marshal path, or was not stamped yet): search
// extraction then need not decode the bytes again. The caller must not
// modify it; the next Stamp does.
func (r *Resource) Decoded() map[string]any {
	if !r.stamped {
		return nil
	}
	return r.val
}

// marshal returns google/fhir's JSON for the stamped resource.
func (r *Resource) marshal(id string, version int64, lastUpdated time.Time) ([]byte, error) {
	// google/fhir's marshaller consumes markers its unmarshaller left in
	// the message (for a primitive that has only extensions, for line
	// breaks in base64Binary), so marshalling the same message twice gives
	// two different results, the second one wrong. Marshal a copy.
	if r.cr == nil {
		return nil, fmt.Errorf("resource: %s already marshalled", r.Type)
	}
	return r.marshalCR(proto.Clone(r.cr).(*bcrpb.ContainedResource), id, version, lastUpdated)
}

// marshalCR stamps cr and returns google/fhir's JSON for it; cr is
// consumed (see marshal).
func (r *Resource) marshalCR(cr *bcrpb.ContainedResource, id string, version int64, lastUpdated time.Time) ([]byte, error) {
	res := resourceOf(cr)
	fields := res.Descriptor().Fields()
	res.Set(fields.ByName("id"), protoreflect.ValueOfMessage((&d4pb.Id{Value: id}).ProtoReflect()))
	meta := &d4pb.Meta{}
	if mf := fields.ByName("meta"); res.Has(mf) {
		meta = res.Get(mf).Message().Interface().(*d4pb.Meta)
	}
	meta.VersionId = &d4pb.Id{Value: strconv.FormatInt(version, 10)}
	meta.LastUpdated = &d4pb.Instant{
		ValueUs:   lastUpdated.UnixMicro(),
		Timezone:  "Z",
		Precision: d4pb.Instant_MICROSECOND,
	}
	res.Set(fields.ByName("meta"), protoreflect.ValueOfMessage(meta.ProtoReflect()))
	out, err := theCodec().m.MarshalResource(res.Interface())
	if err != nil {
		return nil, fmt.Errorf("resource: marshal %s: %w", r.Type, err)
	}
	return out, nil
}

// reporter collects every validation issue google/fhir reports.
type reporter struct{ issues []outcome.Issue }

func (r *reporter) ReportValidationError(path string, err error) error {
	r.issues = append(r.issues, issue(path, err.Error()))
	return nil
}

func (r *reporter) ReportValidationWarning(path string, err error) error {
	// Warnings do not fail a write and would only be noise in a 400.
	return nil
}

// issue turns one google/fhir error at path into an issue whose
// expression is a FHIRPath to the element concerned.
func issue(path, msg string) outcome.Issue {
	msg = strings.TrimPrefix(msg, fmt.Sprintf("error at %q: ", path))
	is := outcome.Issue{Severity: outcome.SevError, Code: outcome.CodeValue, Diagnostics: msg}
	if path != "" {
		is.Expression = []string{fhirPath(path)}
	}
	// google/fhir reports an unknown or missing element at its parent:
	// point at the element itself.
	child := func(quoted string) {
		if n, err := strconv.Unquote(quoted); err == nil && path != "" {
			is.Expression[0] += "." + n
		}
	}
	switch {
	case strings.HasPrefix(msg, "unknown field: "):
		is.Code = outcome.CodeStructure
		child(strings.TrimPrefix(msg, "unknown field: "))
	case msg == `missing required field "resourceType"`, strings.HasPrefix(msg, "invalid JSON"),
		strings.HasPrefix(msg, "invalid resource type"):
		is.Code = outcome.CodeStructure
	case strings.HasPrefix(msg, "missing required field "):
		is.Code = outcome.CodeRequired
		child(strings.TrimPrefix(msg, "missing required field "))
	case strings.HasPrefix(msg, "unknown resource type"):
		// The path ends in the unknown type's name: point at the element
		// holding it (Patient.contained[0]), or at nothing when it is the
		// body's own type.
		is.Code = outcome.CodeNotSupported
		is.Expression = nil
		if i := strings.LastIndexByte(path, '.'); i > 0 {
			is.Expression = []string{fhirPath(path[:i])}
		}
	}
	return is
}

// fhirPath turns a google/fhir path into FHIRPath: google/fhir names the
// type of an inlined resource as a step ("Bundle.entry[0].resource.Patient.active"),
// FHIRPath does not ("Bundle.entry[0].resource.active").
func fhirPath(path string) string {
	steps := strings.Split(path, ".")
	kept := steps[:1]
	for _, s := range steps[1:] {
		if !IsType(s) {
			kept = append(kept, s)
		}
	}
	return strings.Join(kept, ".")
}

// parseIssues turns google/fhir's unmarshal errors into issues, one per
// error. Its error types live in an internal package, so their exported
// fields are read by reflection.
func parseIssues(err error) []outcome.Issue {
	if err == nil {
		return nil
	}
	var issues []outcome.Issue
	add := func(v reflect.Value) {
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			if v.IsNil() {
				return
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct || !v.FieldByName("Path").IsValid() {
			issues = append(issues, issue("", fmt.Sprint(v.Interface())))
			return
		}
		msg := v.FieldByName("Details").String()
		if d := v.FieldByName("Diagnostics").String(); d != "" {
			msg += ": " + d
		}
		issues = append(issues, issue(v.FieldByName("Path").String(), msg))
	}
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Slice {
		for i := 0; i < v.Len(); i++ {
			add(v.Index(i))
		}
	} else {
		add(v)
	}
	return issues
}

// expression is an issue's one expression, "" when it has none.
func expression(is outcome.Issue) string {
	if len(is.Expression) == 0 {
		return ""
	}
	return is.Expression[0]
}

// maxIssues is the most issues one response lists.
const maxIssues = 100

// invalid is the 400 for a body with issues: checkShape's and
// google/fhir's, except those at an element checkShape already reported
// (google/fhir reads a duplicate or null property its own way), ordered
// by expression and diagnostics (google/fhir walks maps, so its own order
// varies).
func invalid(shape, fhir []outcome.Issue) *outcome.Error {
	at := map[string]bool{}
	for _, is := range shape {
		at[expression(is)] = true
	}
	issues := shape
	for _, is := range fhir {
		if len(is.Expression) == 0 || !at[expression(is)] {
			issues = append(issues, is)
		}
	}
	slices.SortFunc(issues, func(a, b outcome.Issue) int {
		return cmp.Or(cmp.Compare(expression(a), expression(b)), cmp.Compare(a.Diagnostics, b.Diagnostics))
	})
	if n := len(issues); n > maxIssues {
		// Keep the response small whatever the body.
		issues = append(issues[:maxIssues], outcome.Issue{
			Severity: outcome.Information, Code: outcome.CodeInformation,
			Diagnostics: fmt.Sprintf("%d more issues not listed", n-maxIssues),
		})
	}
	return &outcome.Error{Status: http.StatusBadRequest, Issues: issues}
}
