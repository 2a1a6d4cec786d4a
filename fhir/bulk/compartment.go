package bulk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kiln-fhir/kiln/fhir/fhirpath"
	"github.com/kiln-fhir/kiln/fhir/search"
)

// compartment tells which patients a resource of one type belongs to,
// through the parameters the Patient CompartmentDefinition names for the
// type (compartmentdefinition-patient.html, via the registry). It reads
// the stored version itself, not the search index, because an export
// reads versions as of transactionTime and the index holds only current
// ones.
type compartment struct {
	self  bool // the type is Patient: a Patient is in its own compartment
	exprs []*fhirpath.Expression
}

func (h *Handler) compartmentOf(typ string) (*compartment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.compCache[typ]; ok {
		return c, nil
	}
	// A patient is in its own compartment (compartmentdefinition.html);
	// the definition lists only Patient.link for the type.
	c := &compartment{self: typ == "Patient"}
	for _, name := range h.cfg.Registry.Compartment("Patient", typ) {
		if name == "{def}" {
			c.self = true
			continue
		}
		p, ok := h.cfg.Registry.Param(typ, name)
		if !ok || p.Type != search.Reference || p.Expression == "" {
			continue
		}
		e, err := fhirpath.Compile(p.Expression)
		if err != nil {
			return nil, fmt.Errorf("bulk: compartment parameter %s.%s: %w", typ, name, err)
		}
		c.exprs = append(c.exprs, e)
	}
	h.compCache[typ] = c
	return c, nil
}

// patients returns the ids of the patients whose compartment holds the
// resource (typ/id with body).
func (c *compartment) patients(id string, body []byte) ([]string, error) {
	var out []string
	if c.self {
		out = append(out, id)
	}
	if len(c.exprs) == 0 {
		return out, nil
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var res map[string]any
	if err := d.Decode(&res); err != nil {
		return nil, err
	}
	for _, e := range c.exprs {
		nodes, err := e.Evaluate(res)
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			var ref string
			if s, ok := n.AsString(); ok {
				ref = s
			} else if m, ok := n.AsMap(); ok {
				ref, _ = m["reference"].(string)
			}
			if typ, pid, ok := patientRef(ref); ok && typ == "Patient" {
				out = append(out, pid)
			}
		}
	}
	return out, nil
}

// patientRef splits a literal reference (relative, absolute, or with a
// version) into its type and id.
func patientRef(ref string) (typ, id string, ok bool) {
	ref = strings.TrimSpace(ref)
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 2 {
		return "", "", false
	}
	typ, id = parts[len(parts)-2], parts[len(parts)-1]
	return typ, id, typ != "" && id != ""
}
