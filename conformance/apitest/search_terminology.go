package apitest

// Terminology for the corpus: a fragment of SNOMED CT's hierarchy and
// ValueSets over it, written for these cases (the corpus has no ValueSet
// or CodeSystem of its own), so that token :in, :not-in, :above and
// :below (search.html#token) have something stored to be right about.
// The expected matches below are read from the Synthea Conditions'
// code.coding and this hierarchy.

const (
	snomed   = "http://snomed.info/sct"
	vsBase   = "http://kiln.example/fhir/ValueSet/"
	sinusVS  = vsBase + "sinusitis"
	acuteVS  = vsBase + "acute-respiratory"
	chronVS  = vsBase + "sinusitis-not-viral"
	expandVS = vsBase + "expanded"
	lacerVS  = vsBase + "lacerations"
	snomedVS = vsBase + "all-snomed"
	cycleVS  = vsBase + "cycle-a"
)

// terminologyResources are PUT with the corpus.
var terminologyResources = []corpusResource{
	// codesystem.html#hierarchy: nested concepts are children. Real
	// SNOMED CT is-a relations, cut down to the codes the corpus uses.
	{typ: "CodeSystem", id: "snomed-fragment", from: "search_terminology.go", body: []byte(`{
		"resourceType":"CodeSystem","id":"snomed-fragment","url":"` + snomed + `","status":"active","content":"fragment",
		"concept":[
			{"code":"36971009","display":"Sinusitis","concept":[
				{"code":"444814009","display":"Viral sinusitis"},
				{"code":"40055000","display":"Chronic sinusitis"}]},
			{"code":"312608009","display":"Laceration","concept":[
				{"code":"284549007","display":"Laceration of hand"},
				{"code":"284551006","display":"Laceration of foot"}]},
			{"code":"10509002","display":"Acute bronchitis"},
			{"code":"195662009","display":"Acute viral pharyngitis"}]}`)},
	// compose.include with an is-a filter on the stored hierarchy.
	{typ: "ValueSet", id: "sinusitis", from: "search_terminology.go", body: []byte(`{
		"resourceType":"ValueSet","id":"sinusitis","url":"` + sinusVS + `","status":"active",
		"compose":{"include":[{"system":"` + snomed + `","filter":[{"property":"concept","op":"is-a","value":"36971009"}]}]}}`)},
	// compose.include with explicit concepts.
	{typ: "ValueSet", id: "acute-respiratory", from: "search_terminology.go", body: []byte(`{
		"resourceType":"ValueSet","id":"acute-respiratory","url":"` + acuteVS + `","status":"active",
		"compose":{"include":[{"system":"` + snomed + `","concept":[{"code":"10509002"},{"code":"195662009"}]}]}}`)},
	// compose.include.valueSet (an import) less compose.exclude.
	{typ: "ValueSet", id: "sinusitis-not-viral", from: "search_terminology.go", body: []byte(`{
		"resourceType":"ValueSet","id":"sinusitis-not-viral","url":"` + chronVS + `","status":"active",
		"compose":{"include":[{"valueSet":["` + sinusVS + `"]}],
		"exclude":[{"system":"` + snomed + `","concept":[{"code":"444814009"}]}]}}`)},
	// An expansion wins over the compose (valueset.html#expansion): the
	// compose says bronchitis, the expansion hypertension and
	// hyperlipidemia.
	{typ: "ValueSet", id: "expanded", from: "search_terminology.go", body: []byte(`{
		"resourceType":"ValueSet","id":"expanded","url":"` + expandVS + `","status":"active",
		"compose":{"include":[{"system":"` + snomed + `","concept":[{"code":"10509002"}]}]},
		"expansion":{"timestamp":"2024-01-01T00:00:00Z","contains":[
			{"system":"` + snomed + `","code":"38341003","display":"Hypertension"},
			{"system":"` + snomed + `","code":"55822004","display":"Hyperlipidemia"}]}}`)},
	// descendent-of leaves the concept itself out.
	{typ: "ValueSet", id: "lacerations", from: "search_terminology.go", body: []byte(`{
		"resourceType":"ValueSet","id":"lacerations","url":"` + lacerVS + `","status":"active",
		"compose":{"include":[{"system":"` + snomed + `","filter":[{"property":"concept","op":"descendent-of","value":"312608009"}]}]}}`)},
	// A whole code system, stored only as a fragment: every code of it.
	{typ: "ValueSet", id: "all-snomed", from: "search_terminology.go", body: []byte(`{
		"resourceType":"ValueSet","id":"all-snomed","url":"` + snomedVS + `","status":"active",
		"compose":{"include":[{"system":"` + snomed + `"}]}}`)},
	// Two ValueSets importing each other.
	{typ: "ValueSet", id: "cycle-a", from: "search_terminology.go", body: []byte(`{
		"resourceType":"ValueSet","id":"cycle-a","url":"` + cycleVS + `","status":"active",
		"compose":{"include":[{"valueSet":["` + vsBase + `cycle-b"]}]}}`)},
	{typ: "ValueSet", id: "cycle-b", from: "search_terminology.go", body: []byte(`{
		"resourceType":"ValueSet","id":"cycle-b","url":"` + vsBase + `cycle-b","status":"active",
		"compose":{"include":[{"valueSet":["` + cycleVS + `"]}]}}`)},
}

// The Synthea Conditions by code (http://snomed.info/sct).
var (
	viralSinusitis = []string{ // 444814009
		"Condition/7d9c882f-0efb-4bdf-aebb-7c884d96eb8f", "Condition/3e9f7bcb-f935-4dcf-afa2-ef576fece15f",
		"Condition/4a33f336-693e-4190-9a11-e127139a979d", "Condition/475299ad-2b75-43e0-8a53-ebf84e077814",
		"Condition/11427a48-7f0d-457c-84ee-a6c5cd98f2b9", "Condition/80b8e47e-fcba-43a8-be1f-0c014c617591",
		"Condition/55cfe76c-c918-402d-b99b-89cf61dc27ef", "Condition/b1e9188e-52f3-453d-81c2-cbaa1731404e",
		"Condition/59c88f1d-a060-45df-bdfd-ba1814980301", "Condition/1e56f03a-4125-4472-9148-6d0b70308320",
		"Condition/6b05fd73-3c7c-49b3-a202-89ed12abc2ca", "Condition/9c2a53aa-db1e-4be5-a901-ab0f92deb42d",
	}
	sinusitis        = []string{"Condition/d3942a9c-2170-4025-952e-5e9c29d47df9"} // 36971009
	chronicSinusitis = []string{                                                  // 40055000
		"Condition/7f358e88-350a-4358-b574-7c2fd64c2814", "Condition/6e0f715c-f1da-49b9-912d-536127e27653",
	}
	bronchitis = []string{ // 10509002
		"Condition/a98ea10a-de25-4b86-ab2c-53ce1d05edf5", "Condition/7a90795b-f430-4fd5-b49c-db1adb39d8b3",
		"Condition/a0b96295-b929-4375-905a-6fb3b2127361", "Condition/3106b09e-ed90-4f3d-a1fa-dcb68c1f1c6d",
		"Condition/23adb513-5956-4a30-9f8c-7ffad6777014",
	}
	pharyngitis = []string{"Condition/9d2dd599-f5c1-43de-8495-5377818eda62"} // 195662009
)

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// terminologyCases: search.html#token :in, :not-in, :above, :below.
func terminologyCases() []searchCase {
	return []searchCase{
		// :in by canonical url: is-a 36971009 is it and its two children
		{name: "token :in a ValueSet with an is-a filter", query: "Condition?code:in=" + sinusVS,
			want: concat(sinusitis, viralSinusitis, chronicSinusitis)},
		// search.html#token: the value may also be a ValueSet/id reference
		{name: "token :in by ValueSet/id", query: "Condition?code:in=ValueSet/acute-respiratory", want: concat(bronchitis, pharyngitis)},
		{name: "token :in with explicit concepts", query: "Condition?code:in=" + acuteVS, want: concat(bronchitis, pharyngitis)},
		{name: "token :in import less exclude", query: "Condition?code:in=" + chronVS, want: concat(sinusitis, chronicSinusitis)},
		{name: "token :in uses the expansion when present", query: "Condition?code:in=" + expandVS,
			want: []string{"Condition/5573dede-f62d-4899-b270-c24d0e1cb1f7", "Condition/72f56c28-6c5d-4387-b686-b3584c20dc6c"}},
		{name: "token :in descendent-of leaves out the parent", query: "Condition?code:in=" + lacerVS,
			want: []string{"Condition/aaceded2-6a1f-4a23-a9f4-fda0ff78acb5", "Condition/beeba3aa-699f-467e-a44b-a48cfe5a75af"}},
		// Hoeger's three Conditions are all SNOMED coded
		{name: "token :in a whole code system", query: "Condition?patient=" + hoeger + "&code:in=" + snomedVS,
			want: concat(chronicSinusitis[1:], []string{"Condition/55cfe76c-c918-402d-b99b-89cf61dc27ef", "Condition/b1e9188e-52f3-453d-81c2-cbaa1731404e"})},
		{name: "token :in, two ValueSets are OR", query: "Condition?code:in=" + acuteVS + "," + lacerVS,
			want: concat(bronchitis, pharyngitis, []string{"Condition/aaceded2-6a1f-4a23-a9f4-fda0ff78acb5", "Condition/beeba3aa-699f-467e-a44b-a48cfe5a75af"})},
		// Jacobi's Conditions: bronchitis, prediabetes, anemia, laceration
		// of hand, chronic sinusitis, viral sinusitis, hyperlipidemia.
		{name: "token :not-in", query: "Condition?patient=" + jacobi + "&code:not-in=" + sinusVS,
			want: []string{
				"Condition/a0b96295-b929-4375-905a-6fb3b2127361", "Condition/7e9da6e0-954e-4270-82d8-5924d71e56b3",
				"Condition/27284b87-0f90-4854-bcec-ec9203c115c3", "Condition/aaceded2-6a1f-4a23-a9f4-fda0ff78acb5",
				"Condition/72f56c28-6c5d-4387-b686-b3584c20dc6c",
			}},
		{name: "token :in inside a chain", query: "Patient?_has:Condition:patient:code:in=" + lacerVS,
			want: []string{"Patient/" + jacobi, "Patient/" + wintheiser}},
		{name: "token :in an unknown ValueSet", query: "Condition?code:in=http://example.org/ValueSet/not-here", status: 400,
			check: names("http://example.org/ValueSet/not-here")},
		{name: "token :in an unknown ValueSet/id", query: "Condition?code:in=ValueSet/not-here", status: 400,
			check: names("ValueSet/not-here")},
		{name: "token :in a ValueSet importing itself", query: "Condition?code:in=" + cycleVS, status: 400, check: names(cycleVS)},

		// :below is the code and its descendants in the stored hierarchy
		{name: "token :below", query: "Condition?code:below=" + snomed + "|36971009", want: concat(sinusitis, viralSinusitis, chronicSinusitis)},
		// :above is the code and its ancestors
		{name: "token :above", query: "Condition?code:above=" + snomed + "|444814009", want: concat(sinusitis, viralSinusitis)},
		{name: "token :below a leaf is the code", query: "Condition?code:below=" + snomed + "|195662009", want: pharyngitis},
		{name: "token :below a system not stored", query: "Observation?code:below=http://loinc.org|8302-2", status: 400,
			check: names("http://loinc.org")},
		{name: "token :below without a system", query: "Condition?code:below=36971009", status: 400, check: names("code:below")},
	}
}
