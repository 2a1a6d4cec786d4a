package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/gorilla/mux"

	"github.com/kiln-fhir/kiln/fhir/outcome"
	"github.com/kiln-fhir/kiln/fhir/resource"
	"github.com/kiln-fhir/kiln/store"
)

// validateInput is what a $validate request asks (operation-resource-
// validate.html): the resource (absent for mode=delete), the mode and the
// profile.
type validateInput struct {
	resource []byte
	mode     string // "", "create", "update" or "delete"
	profile  string
}

// validate is POST [base]/[type]/$validate and POST
// [base]/[type]/[id]/$validate (operation-resource-validate.html). The
// answer is an OperationOutcome with status 200 whether or not the
// resource is valid: the findings are the result of the operation. A 4xx
// means the validation could not be performed: no resource, an unknown
// mode, mode update or delete at the type level ("modes update and delete
// can only be used when the operation is invoked at the resource instance
// level"), a body that is not JSON.
//
// The resource is checked against the base specification (the same
// validation every create and update gets). The profile parameter is
// accepted, but a profile other than the base is not checked: the
// definition says the server "SHALL return an error" when it cannot
// validate against the nominated profile, so the outcome carries an error
// issue saying so, beside the result of the base validation.
func (a *API) validate(w http.ResponseWriter, r *http.Request) error {
	v := mux.Vars(r)
	typ, id := v["type"], v["id"]
	in, err := validateRequest(r, typ)
	if err != nil {
		return err
	}
	if id == "" && (in.mode == "update" || in.mode == "delete") {
		return outcome.Newf(http.StatusBadRequest, outcome.CodeNotSupported,
			"mode=%s validates a change to an existing resource: invoke it as [type]/[id]/$validate", in.mode)
	}
	gone := false
	if id != "" {
		// Invoked on [type]/[id], the operation is about that resource: it
		// must exist and be one the access may read. One that does not
		// exist, or that the access may not see (deleted or not), is 404,
		// as a read answers (no mode may tell the two apart: $validate
		// must not probe other patients' records).
		res, err := a.store.Read(r.Context(), typ, id)
		if err := a.permitVersion(r.Context(), OpRead, res, err); err != nil {
			return err
		}
		switch {
		case errors.Is(err, store.ErrGone):
			gone = true // a delete is refused below; an update would resurrect it
		case err != nil:
			return readError(err, res)
		}
	}
	var issues []outcome.Issue
	switch in.mode {
	case "delete":
		// The server ignores the content and checks that the resource
		// exists (there is no referential integrity to check).
		if gone {
			issues = append(issues, outcome.Issue{Severity: outcome.SevError, Code: outcome.CodeDeleted,
				Diagnostics: fmt.Sprintf("%s/%s is already deleted", typ, id)})
		}
	default:
		if in.resource == nil {
			return outcome.New(http.StatusBadRequest, outcome.CodeRequired, "$validate needs the resource: send it as the body, or as the parameter \"resource\" of a Parameters body")
		}
		issues = append(issues, checkResource(in.resource, typ, id, in.mode)...)
	}
	valid := true
	for _, is := range issues {
		valid = valid && is.Severity != outcome.SevError && is.Severity != outcome.Fatal
	}
	otherProfile := in.profile != "" && in.profile != "http://hl7.org/fhir/StructureDefinition/"+typ
	if valid {
		msg := "the resource is valid against the base specification"
		switch {
		case in.mode == "delete":
			msg = "the resource exists: a delete would be accepted"
		case in.mode != "" && !otherProfile:
			msg += "; " + in.mode + " would be accepted"
		}
		issues = append(issues, outcome.Issue{Severity: outcome.Information, Code: outcome.CodeInformation, Diagnostics: msg})
	}
	if otherProfile {
		issues = append(issues, outcome.Issue{Severity: outcome.SevError, Code: outcome.CodeNotSupported,
			Diagnostics: "profile " + in.profile + " was not checked: this server validates against the base specification only"})
	}
	writeJSON(w, r, http.StatusOK, outcome.Resource(issues))
	return nil
}

// checkResource validates body as a resource of type typ that a create
// or update of [typ]/[id] would store; the issues found, each with the
// element's FHIRPath in expression.
func checkResource(body []byte, typ, id, mode string) []outcome.Issue {
	parsed, err := resource.Parse(body)
	if err != nil {
		var oe *outcome.Error
		if errors.As(err, &oe) {
			return oe.Issues
		}
		return []outcome.Issue{{Severity: outcome.SevError, Code: outcome.CodeStructure, Diagnostics: "the resource could not be read"}}
	}
	if parsed.Type != typ {
		return []outcome.Issue{{Severity: outcome.SevError, Code: outcome.CodeInvalid,
			Diagnostics: fmt.Sprintf("resourceType %q does not match the type in the URL (%s)", parsed.Type, typ), Expression: []string{"resourceType"}}}
	}
	// http.html#update: the body carries the id of the URL.
	switch {
	case mode == "update" && parsed.ID == "":
		return []outcome.Issue{{Severity: outcome.SevError, Code: outcome.CodeRequired,
			Diagnostics: "an update needs the resource's id", Expression: []string{typ + ".id"}}}
	case (mode == "update" || mode == "") && id != "" && parsed.ID != "" && parsed.ID != id:
		return []outcome.Issue{{Severity: outcome.SevError, Code: outcome.CodeInvalid,
			Diagnostics: fmt.Sprintf("the id in the resource (%s) differs from the id in the URL (%s)", parsed.ID, id), Expression: []string{typ + ".id"}}}
	}
	return nil
}

// validateRequest reads the operation's input: a Parameters body with
// resource, mode and profile, or the resource itself as the body with
// mode and profile in the URL (operations.html#request).
func validateRequest(r *http.Request, typ string) (validateInput, error) {
	body, err := readBody(r)
	if err != nil {
		return validateInput{}, err
	}
	body = bytes.TrimSpace(body)
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if len(body) > 0 && body[0] != '{' || len(body) > 0 && json.Unmarshal(body, &head) != nil {
		return validateInput{}, outcome.New(http.StatusBadRequest, outcome.CodeStructure, "the body must be a JSON object: a resource or a Parameters resource")
	}
	var in validateInput
	if head.ResourceType == "Parameters" && typ != "Parameters" {
		if in, err = validateParameters(body); err != nil {
			return validateInput{}, err
		}
	} else {
		if len(body) > 0 {
			in.resource = body
		}
		q := r.URL.Query()
		for _, name := range []string{"mode", "profile"} {
			if len(q[name]) > 1 {
				return validateInput{}, outcome.Newf(http.StatusBadRequest, outcome.CodeInvalid, "%s may appear only once", name)
			}
		}
		in.mode, in.profile = q.Get("mode"), q.Get("profile")
	}
	switch in.mode {
	case "", "create", "update", "delete":
	default:
		return validateInput{}, outcome.Newf(http.StatusBadRequest, outcome.CodeValue,
			"mode must be create, update or delete (profile validation modes are not supported), not %q", in.mode)
	}
	if in.profile != "" {
		if u, err := url.Parse(in.profile); err != nil || !u.IsAbs() {
			return validateInput{}, outcome.New(http.StatusBadRequest, outcome.CodeValue, "profile must be a canonical URL")
		}
	}
	return in, nil
}

// validateParameters reads the Parameters form of the input. Each
// parameter may appear once; unknown ones are an error rather than
// silently ignored.
func validateParameters(body []byte) (validateInput, error) {
	var p struct {
		Parameter []struct {
			Name           string          `json:"name"`
			Resource       json.RawMessage `json:"resource"`
			ValueCode      *string         `json:"valueCode"`
			ValueString    *string         `json:"valueString"`
			ValueURI       *string         `json:"valueUri"`
			ValueCanonical *string         `json:"valueCanonical"`
		} `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return validateInput{}, outcome.New(http.StatusBadRequest, outcome.CodeStructure, "the Parameters body could not be read: "+err.Error())
	}
	var in validateInput
	seen := map[string]bool{}
	for i, par := range p.Parameter {
		where := fmt.Sprintf("Parameters.parameter[%d]", i)
		if seen[par.Name] {
			return validateInput{}, outcome.New(http.StatusBadRequest, outcome.CodeInvalid, "parameter "+par.Name+" may appear only once", where)
		}
		seen[par.Name] = true
		str := func(vals ...*string) (string, error) {
			for _, v := range vals {
				if v != nil {
					return *v, nil
				}
			}
			return "", outcome.New(http.StatusBadRequest, outcome.CodeRequired, "parameter "+par.Name+" needs a value", where)
		}
		var err error
		switch par.Name {
		case "resource":
			if len(par.Resource) == 0 || string(par.Resource) == "null" {
				return validateInput{}, outcome.New(http.StatusBadRequest, outcome.CodeRequired, "parameter resource needs a resource", where+".resource")
			}
			in.resource = par.Resource
		case "mode":
			in.mode, err = str(par.ValueCode, par.ValueString)
		case "profile":
			in.profile, err = str(par.ValueURI, par.ValueCanonical, par.ValueString)
		default:
			return validateInput{}, outcome.New(http.StatusBadRequest, outcome.CodeNotSupported,
				fmt.Sprintf("$validate has no parameter %q (resource, mode, profile)", par.Name), where)
		}
		if err != nil {
			return validateInput{}, err
		}
	}
	return in, nil
}
