package rules

// Calendar rules need IANA time zones, and container images often have no
// zoneinfo: embed the database (about 450 KB) so that every build of the
// binary has it.
import _ "time/tzdata"
