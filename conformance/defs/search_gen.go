//go:build ignore

// Command search_gen compacts the official R4 SearchParameter bundle (and
// the US Core 3.1.0 SearchParameters) into the files package defs embeds:
// only what a server runs on (url, code, base, type, expression, target,
// modifier, comparator, multipleOr/And, component, a non-normal
// xpathUsage), one parameter per line so that a regenerated file diffs
// readably. Descriptions, contacts and xpath are dropped: 2.1 MB → 0.5 MB.
//
//	go generate -run search_gen ./conformance/defs
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
)

// searchParameter mirrors defs.SearchParameter; the generator does not
// import defs so that it still runs when the embedded files are missing or
// broken.
type searchParameter struct {
	URL         string      `json:"url"`
	Code        string      `json:"code"`
	Base        []string    `json:"base"`
	Type        string      `json:"type"`
	Expression  string      `json:"expression,omitempty"`
	XPathUsage  string      `json:"xpathUsage,omitempty"`
	Target      []string    `json:"target,omitempty"`
	MultipleOr  *bool       `json:"multipleOr,omitempty"`
	MultipleAnd *bool       `json:"multipleAnd,omitempty"`
	Comparator  []string    `json:"comparator,omitempty"`
	Modifier    []string    `json:"modifier,omitempty"`
	Component   []component `json:"component,omitempty"`
}

type component struct {
	Definition string `json:"definition"`
	Expression string `json:"expression"`
}

func main() {
	bundle := flag.String("bundle", "", "search-parameters.json of FHIR R4 4.0.1 (a Bundle of SearchParameter)")
	uscore := flag.String("uscore", "", "directory holding US Core 3.1.0 SearchParameter-*.json")
	out := flag.String("out", "search-parameters.json", "file to write the R4 parameters to")
	uscoreOut := flag.String("uscore-out", "search-parameters-uscore.json", "file to write the US Core parameters to")
	flag.Parse()
	if *bundle == "" || *uscore == "" {
		log.Fatal("search_gen: -bundle and -uscore are required")
	}

	src, err := os.ReadFile(*bundle)
	if err != nil {
		log.Fatal(err)
	}
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(src, &b); err != nil || b.ResourceType != "Bundle" {
		log.Fatalf("search_gen: %s is not a Bundle: %v", *bundle, err)
	}
	var params []searchParameter
	for _, e := range b.Entry {
		params = append(params, decode(e.Resource))
	}
	write(*out, params)

	files, err := filepath.Glob(filepath.Join(*uscore, "SearchParameter-*.json"))
	if err != nil || len(files) == 0 {
		log.Fatalf("search_gen: no SearchParameter-*.json in %s", *uscore)
	}
	var us []searchParameter
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			log.Fatal(err)
		}
		us = append(us, decode(raw))
	}
	write(*uscoreOut, us)
}

func decode(raw []byte) searchParameter {
	var p searchParameter
	var rt struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(raw, &rt); err != nil || rt.ResourceType != "SearchParameter" {
		log.Fatalf("search_gen: not a SearchParameter: %.80s", raw)
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		log.Fatalf("search_gen: %v", err)
	}
	if p.XPathUsage == "normal" {
		p.XPathUsage = "" // the default; only phonetic/nearby/… are kept
	}
	return p
}

func write(path string, params []searchParameter) {
	sort.SliceStable(params, func(i, j int) bool { return params[i].URL < params[j].URL })
	var b bytes.Buffer
	b.WriteString("[\n")
	for i, p := range params {
		// Encoder, not Marshal: keep "<" and "&" readable in expressions.
		var line bytes.Buffer
		enc := json.NewEncoder(&line)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(p); err != nil {
			log.Fatal(err)
		}
		b.Write(bytes.TrimSuffix(line.Bytes(), []byte("\n")))
		if i < len(params)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]\n")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "search_gen: %d parameters written to %s\n", len(params), path)
}
