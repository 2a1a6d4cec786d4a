// Package outcome is Kiln's FHIR error type and the one place where errors
// become OperationOutcome responses.
//
// An *Error carries an HTTP status and every issue found, not just the
// first. Diagnostics are meant for the client and may echo the client's
// own input; they are never logged. LogString gives the part that is safe
// to log (status and issue codes).
package outcome

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Issue severities (valueset issue-severity).
const (
	Fatal       = "fatal"
	SevError    = "error"
	Warning     = "warning"
	Information = "information"
)

// Issue type codes used by Kiln (valueset issue-type).
const (
	CodeInvalid      = "invalid"
	CodeStructure    = "structure"
	CodeRequired     = "required"
	CodeValue        = "value"
	CodeInvariant    = "invariant"
	CodeSecurity     = "security"
	CodeLogin        = "login"
	CodeForbidden    = "forbidden"
	CodeNotSupported = "not-supported"
	CodeNotFound     = "not-found"
	CodeDeleted      = "deleted"
	CodeConflict     = "conflict"
	CodeDuplicate    = "duplicate"
	CodeTooCostly    = "too-costly"
	CodeException    = "exception"
	CodeTransient    = "transient"
	CodeTimeout      = "timeout"
	CodeProcessing   = "processing"
	CodeInformation  = "informational"
	CodeMultiple     = "multiple-matches"
)

// Issue is one OperationOutcome.issue.
type Issue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

// Error is a FHIR error: an HTTP status and the issues that explain it.
type Error struct {
	Status int
	Issues []Issue
	// Header is sent with the response (e.g. ETag on 410, Allow on 405).
	Header http.Header
	cause  error
}

// New returns an error with one issue of severity error.
func New(status int, code, diagnostics string, expression ...string) *Error {
	return &Error{Status: status, Issues: []Issue{{
		Severity: SevError, Code: code, Diagnostics: diagnostics, Expression: expression,
	}}}
}

// Newf is New with a formatted diagnostics string.
func Newf(status int, code, format string, args ...any) *Error {
	return New(status, code, fmt.Sprintf(format, args...))
}

// Wrap returns e remembering cause, so errors.Is/As see through it.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// With returns a copy of e with the header set.
func (e *Error) With(key, value string) *Error {
	c := *e
	c.Header = c.Header.Clone()
	if c.Header == nil {
		c.Header = http.Header{}
	}
	c.Header.Set(key, value)
	return &c
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", e.Status)
	for _, is := range e.Issues {
		fmt.Fprintf(&b, "; %s %s", is.Severity, is.Code)
		if is.Diagnostics != "" {
			b.WriteString(": " + is.Diagnostics)
		}
		if len(is.Expression) > 0 {
			b.WriteString(" at " + strings.Join(is.Expression, ", "))
		}
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.cause }

// LogString is safe to log: status and issue codes, no diagnostics (which
// may echo patient data from the request).
func (e *Error) LogString() string {
	codes := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		codes[i] = is.Code
	}
	return fmt.Sprintf("%d %s", e.Status, strings.Join(codes, ","))
}

// As returns err as an *Error; anything else becomes a 500 that reveals
// nothing about its cause.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return New(http.StatusInternalServerError, CodeException, "internal server error").Wrap(err)
}

// Resource renders an OperationOutcome resource for issues.
func Resource(issues []Issue) []byte {
	body, err := json.Marshal(struct {
		ResourceType string  `json:"resourceType"`
		Issue        []Issue `json:"issue"`
	}{"OperationOutcome", issues})
	if err != nil {
		panic(err) // only strings: cannot fail
	}
	return body
}

// Info renders an OperationOutcome with one informational issue, for
// successes that return an outcome (Prefer: return=OperationOutcome, delete).
func Info(diagnostics string) []byte {
	return Resource([]Issue{{Severity: Information, Code: CodeInformation, Diagnostics: diagnostics}})
}

// Write sends err as an OperationOutcome with its status. Errors that are
// not *Error become 500 without leaking their text.
func Write(w http.ResponseWriter, err error) {
	e := As(err)
	h := w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	h.Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(e.Status)
	w.Write(Resource(e.Issues))
}
