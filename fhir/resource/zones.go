package resource

import (
	d4pb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// utcZones names the timezone of every dateTime and instant at offset
// +00:00 "UTC" instead. google/fhir's marshaller passes each timezone other
// than "Z" to time.LoadLocation, which for an offset searches the zoneinfo
// directories and GOROOT's zoneinfo.zip on disk before it gives up and
// makes a fixed zone; on Synthea data (mostly +00:00) that was 40% of
// Stamp. time.LoadLocation answers "UTC" without I/O, and the marshaller
// prints it with the same layout as "+00:00", so the JSON is unchanged.
// Other offsets still take the slow way; resources inlined as contained
// are stored serialized and are not reached.
func utcZones(m protoreflect.Message) {
	switch v := m.Interface().(type) {
	case *d4pb.DateTime:
		if v.Timezone == "+00:00" {
			v.Timezone = "UTC"
		}
		return
	case *d4pb.Instant:
		if v.Timezone == "+00:00" {
			v.Timezone = "UTC"
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind, fd.IsMap():
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				utcZones(l.Get(i).Message())
			}
		default:
			utcZones(v.Message())
		}
		return true
	})
}
