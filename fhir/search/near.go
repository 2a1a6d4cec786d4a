package search

import (
	"errors"
	"math"
)

// KmPerDegree is Earth's mean radius over a degree: kilometres per degree
// of latitude (and of longitude at the equator).
const KmPerDegree = 6371.0088 * math.Pi / 180

// nearDefaultKm is the distance near uses when none is given:
// search.html#near leaves it to the server.
const nearDefaultKm = 10

// kilometres per unit of the distances near accepts (UCUM codes and the
// plain spellings).
var nearUnits = map[string]float64{"km": 1, "m": 0.001, "mi": 1.609344, "[mi_i]": 1.609344,
	"[mi_us]": 1.609347, "[nmi_i]": 1.852}

// NearPoint is what a near value asks: within Km kilometres of Lat, Long.
type NearPoint struct{ Lat, Long, Km float64 }

// Near reads a near value, latitude|longitude[|distance[|units]]
// (search.html#near), for the backends to compile. A distance unit it does
// not know is returned as badUnit, with no error, for the backend to
// refuse as unsupported.
func Near(v *Value) (p NearPoint, badUnit string, err error) {
	if len(v.Components) < 2 {
		return p, "", errors.New("latitude|longitude expected")
	}
	p = NearPoint{Lat: v.Components[0].Num, Long: v.Components[1].Num, Km: nearDefaultKm}
	if len(v.Components) > 2 {
		d := v.Components[2]
		per, ok := nearUnits[d.Code]
		if d.Code == "" {
			per, ok = 1, true
		}
		if !ok {
			return p, d.Code, nil
		}
		p.Km = d.Num * per
	}
	return p, "", nil
}
