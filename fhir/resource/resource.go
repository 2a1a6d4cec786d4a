// Package resource parses and validates FHIR R4 resources with
// github.com/google/fhir/go and produces the canonical JSON Kiln stores.
//
// A resource is parsed once, on write. The canonical bytes produced here
// (compact JSON in the FHIR element order of google/fhir's marshaller, with
// id and meta.versionId/lastUpdated set by the server) are what the store
// keeps and what reads serve, without another trip through protos.
package resource

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"sort"
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
}

// Parse validates body as a FHIR R4 resource. Every problem found is
// reported in the returned *outcome.Error (status 400), each issue with the
// FHIRPath of the element in expression.
func Parse(body []byte) (*Resource, error) {
	if err := checkShape(body); err != nil {
		return nil, err
	}
	rep := &reporter{}
	msg, err := theCodec().um.UnmarshalWithErrorReporter(body, rep)
	if err != nil {
		return nil, parseError(err)
	}
	if len(rep.issues) > 0 {
		return nil, &outcome.Error{Status: http.StatusBadRequest, Issues: rep.issues}
	}
	cr, ok := msg.(*bcrpb.ContainedResource)
	if !ok {
		return nil, fmt.Errorf("resource: unexpected message %T", msg)
	}
	r := &Resource{cr: cr}
	res := r.message()
	if res == nil {
		return nil, outcome.New(http.StatusBadRequest, outcome.CodeStructure, "no resource in body")
	}
	r.Type = string(res.Descriptor().Name())
	if idf := res.Descriptor().Fields().ByName("id"); idf != nil && res.Has(idf) {
		r.ID = res.Get(idf).Message().Interface().(*d4pb.Id).GetValue()
	}
	return r, nil
}

// message returns the resource inside the ContainedResource oneof.
func (r *Resource) message() protoreflect.Message {
	m := r.cr.ProtoReflect()
	od := m.Descriptor().Oneofs().ByName("oneof_resource")
	fd := m.WhichOneof(od)
	if fd == nil {
		return nil
	}
	return m.Mutable(fd).Message()
}

// Stamp sets id, meta.versionId and meta.lastUpdated (replacing whatever
// the client sent: http.html#create ignores them) and returns the canonical
// JSON. The rest of meta (profile, security, tag, source) is kept.
func (r *Resource) Stamp(id string, version int64, lastUpdated time.Time) ([]byte, error) {
	res := r.message()
	fields := res.Descriptor().Fields()
	res.Set(fields.ByName("id"), protoreflect.ValueOfMessage((&d4pb.Id{Value: id}).ProtoReflect()))
	meta := &d4pb.Meta{}
	if mf := fields.ByName("meta"); res.Has(mf) {
		meta = proto.Clone(res.Get(mf).Message().Interface()).(*d4pb.Meta)
	}
	meta.VersionId = &d4pb.Id{Value: fmt.Sprint(version)}
	meta.LastUpdated = &d4pb.Instant{
		ValueUs:   lastUpdated.UnixMicro(),
		Timezone:  "Z",
		Precision: d4pb.Instant_MICROSECOND,
	}
	res.Set(fields.ByName("meta"), protoreflect.ValueOfMessage(meta.ProtoReflect()))
	r.ID = id
	out, err := theCodec().m.MarshalResource(res.Interface())
	if err != nil {
		return nil, fmt.Errorf("resource: marshal %s: %w", r.Type, err)
	}
	return out, nil
}

// checkShape rejects what google/fhir would accept but FHIR JSON forbids,
// before the expensive parse: a body that is not one JSON object, and
// duplicate keys (json.html: "there are no duplicate properties").
func checkShape(body []byte) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return outcome.New(http.StatusBadRequest, outcome.CodeStructure, "empty body: a FHIR resource is required")
	}
	if trimmed[0] != '{' {
		return outcome.New(http.StatusBadRequest, outcome.CodeStructure, "body is not a JSON object: a FHIR resource is a JSON object with a resourceType")
	}
	if !json.Valid(trimmed) {
		var v any
		err := json.Unmarshal(trimmed, &v)
		return outcome.Newf(http.StatusBadRequest, outcome.CodeStructure, "malformed JSON: %v", err)
	}
	return checkKeys(json.NewDecoder(bytes.NewReader(trimmed)), "", false)
}

// checkKeys walks one JSON value and reports duplicate object keys and
// keys that are not FHIR JSON property names (google/fhir accepts
// "BirthDate" for "birthDate"; FHIR does not), plus nulls, which FHIR JSON
// allows only inside arrays of primitives (json.html#primitive: "given":
// ["a", null] beside "_given": [null, {…}]).
func checkKeys(dec *json.Decoder, path string, inArray bool) error {
	tok, err := dec.Token()
	if err != nil {
		return outcome.Newf(http.StatusBadRequest, outcome.CodeStructure, "malformed JSON: %v", err)
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return outcome.Newf(http.StatusBadRequest, outcome.CodeStructure, "malformed JSON: %v", err)
			}
			k := kt.(string)
			at := k
			if path != "" {
				at = path + "." + k
			}
			if seen[k] {
				return outcome.New(http.StatusBadRequest, outcome.CodeStructure, fmt.Sprintf("duplicate property %q", k), at)
			}
			seen[k] = true
			if !propertyName.MatchString(k) {
				return outcome.New(http.StatusBadRequest, outcome.CodeStructure, fmt.Sprintf("unknown element %q", k), at)
			}
			if err := checkKeys(dec, at, false); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := checkKeys(dec, fmt.Sprintf("%s[%d]", path, i), true); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	case nil:
		if inArray {
			return nil
		}
		return outcome.New(http.StatusBadRequest, outcome.CodeStructure, "null is not allowed in FHIR JSON", path)
	}
	if err != nil {
		return outcome.Newf(http.StatusBadRequest, outcome.CodeStructure, "malformed JSON: %v", err)
	}
	return nil
}

var propertyName = regexp.MustCompile(`^_?[a-z][A-Za-z0-9]*$`)

// reporter collects every validation issue google/fhir reports.
type reporter struct{ issues []outcome.Issue }

func (r *reporter) ReportValidationError(path string, err error) error {
	r.issues = append(r.issues, issue(outcome.SevError, path, err.Error()))
	return nil
}

func (r *reporter) ReportValidationWarning(path string, err error) error {
	// Warnings do not fail a write and would only be noise in a 400.
	return nil
}

func issue(severity, path, msg string) outcome.Issue {
	is := outcome.Issue{Severity: severity, Code: outcome.CodeValue, Diagnostics: msg}
	if path != "" {
		is.Expression = []string{path}
		is.Diagnostics = strings.TrimPrefix(msg, fmt.Sprintf("error at %q: ", path))
	}
	return is
}

// parseError turns google/fhir's unmarshal errors into an OperationOutcome
// with one issue per error. Its error types live in an internal package,
// so their exported fields are read by reflection.
func parseError(err error) error {
	var issues []outcome.Issue
	add := func(v reflect.Value) {
		for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
			if v.IsNil() {
				return
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct || !v.FieldByName("Path").IsValid() {
			issues = append(issues, issue(outcome.SevError, "", fmt.Sprint(v.Interface())))
			return
		}
		path := v.FieldByName("Path").String()
		msg := v.FieldByName("Details").String()
		if d := v.FieldByName("Diagnostics").String(); d != "" {
			msg += ": " + d
		}
		if name, ok := strings.CutPrefix(msg, "unknown field: "); ok {
			// Point at the element itself, not at its parent.
			if n, err := strconv.Unquote(name); err == nil && path != "" {
				path += "." + n
			}
		}
		is := issue(outcome.SevError, path, msg)
		switch {
		case strings.HasPrefix(msg, "unknown field"), strings.HasPrefix(msg, "invalid JSON"),
			strings.HasPrefix(msg, "missing required field \"resourceType\""):
			is.Code = outcome.CodeStructure
		case strings.HasPrefix(msg, "unknown resource type"):
			is.Code = outcome.CodeNotSupported
		}
		issues = append(issues, is)
	}
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Slice {
		for i := 0; i < v.Len(); i++ {
			add(v.Index(i))
		}
	} else {
		add(v)
	}
	sort.SliceStable(issues, func(i, j int) bool {
		return strings.Join(issues[i].Expression, "") < strings.Join(issues[j].Expression, "")
	})
	return &outcome.Error{Status: http.StatusBadRequest, Issues: issues}
}
