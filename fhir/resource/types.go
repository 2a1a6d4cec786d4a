package resource

import (
	"regexp"
	"sort"
	"sync"

	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
)

// types is every R4 resource type google/fhir knows: the fields of the
// ContainedResource oneof.
var types = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	od := (&bcrpb.ContainedResource{}).ProtoReflect().Descriptor().Oneofs().ByName("oneof_resource")
	for i := 0; i < od.Fields().Len(); i++ {
		m[string(od.Fields().Get(i).Message().Name())] = true
	}
	return m
})

// IsType reports whether name is an R4 resource type (case-sensitive:
// http.html says URLs are).
func IsType(name string) bool { return types()[name] }

// Types lists every R4 resource type, sorted.
func Types() []string {
	out := make([]string, 0, len(types()))
	for t := range types() {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// idPattern is datatypes.html#id.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// ValidID reports whether id is a valid FHIR logical id.
func ValidID(id string) bool { return idPattern.MatchString(id) }
