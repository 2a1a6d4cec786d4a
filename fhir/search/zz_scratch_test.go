package search
import ("testing";"fmt")
func TestZZScratch(t *testing.T){
 r:=Default()
 for _, q := range [][2]string{{"Patient","name"},{"Patient","phonetic"},{"Observation","subject"},{"Observation","code"},{"Observation","code-value-quantity"},{"Observation","value-quantity"},{"Location","near"},{"Patient","_id"},{"Patient","_lastUpdated"},{"Patient","_profile"},{"Patient","_source"},{"Patient","_text"},{"Patient","_list"},{"Patient","identifier"},{"ValueSet","url"},{"Observation","value-string"},{"RiskAssessment","probability"},{"Patient","gender"},{"Patient","birthdate"},{"Patient","organization"},{"Organization","name"},{"Observation","patient"},{"AuditEvent","entity"},{"AuditEvent","agent"},{"Patient","general-practitioner"},{"Observation","combo-code-value-quantity"},{"Patient","active"},{"Patient","_security"},{"Patient","_tag"}, {"Observation","component-code-value-quantity"}, {"Questionnaire","context-type-value"}, {"Observation","_filter"}, {"Patient","link"}, {"Observation","derived-from"}, {"Condition","onset-age"}, {"Observation","based-on"}} {
  p, ok := r.Param(q[0], q[1])
  if !ok { fmt.Println(q, "MISSING"); continue }
  fmt.Printf("%s.%s type=%s targets=%v mods=%v comps=%v phon=%v mor=%v mand=%v expr=%s\n", q[0], p.Name, p.Type, p.Targets, p.Modifiers, p.Comparators, p.Phonetic, p.MultipleOr, p.MultipleAnd, p.Expression)
  for _, c := range p.Components { fmt.Printf("   comp %s %s %s\n", c.Name, c.Type, c.Expression) }
 }
 fmt.Println(r.Unsupported()[:3], len(r.Unsupported()))
 n:=0; for _, typ := range r.Types(){ for _, p := range r.Params(typ){ if p.Type==Special {fmt.Println("special", typ, p.Name)}; if len(p.Modifiers)>0 && p.Type!=Reference && fmt.Sprint(p.Modifiers)!=fmt.Sprint(modifiers[p.Type]) {n++; if n<15 {fmt.Println("custom mods", typ, p.Name, p.Modifiers)}}}}
 fmt.Println(n)
}
