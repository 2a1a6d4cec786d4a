package resource

import "bytes"

var resourceTypeKey = []byte(`"resourceType":`)

// resourceTypeFirst moves the "resourceType" property to the front of
// every object that has one, in place: the resource itself and every
// resource inlined in it (contained, Bundle.entry.resource,
// Parameters.parameter.resource). No FHIR element is called resourceType,
// so the property marks a resource wherever it occurs. json.html does not
// require the order, but readers (people, and streaming parsers that need
// the type first) expect it; google/fhir's marshaller sorts keys
// alphabetically and so puts it mid-object.
//
// b must be compact JSON as that marshaller writes it (no whitespace, so
// "resourceType": is always written the same way). The rest of b stays
// byte-identical; one pass, no allocation.
func resourceTypeFirst(b []byte) {
	var stack [maxDepth]int
	starts := stack[:0] // offsets of the '{' of the open objects
	var buf [64]byte
	for i := 0; i < len(b); {
		switch b[i] {
		case '{':
			starts = append(starts, i)
			i++
		case '}':
			starts = starts[:len(starts)-1]
			i++
		case '"':
			if !bytes.HasPrefix(b[i:], resourceTypeKey) {
				i = stringEnd(b, i)
				break
			}
			// A string followed by ':' is a key: this is the property.
			from, to := i, stringEnd(b, i+len(resourceTypeKey))
			open := starts[len(starts)-1]
			if from > open+1 {
				// {A,B,"resourceType":"X"…  →  {"resourceType":"X",A,B…
				prop := append(buf[:0], b[from:to]...)
				copy(b[open+1+len(prop)+1:to], b[open+1:from-1])
				copy(b[open+1:], prop)
				b[open+1+len(prop)] = ','
			}
			i = to
		default:
			i++
		}
	}
}
