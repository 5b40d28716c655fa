package rescale

import (
	"regexp"
	"strconv"
)

// versioned matches a name a rescale made: "<base>-r<K>".
var versioned = regexp.MustCompile(`^(.+)-r([1-9][0-9]*)$`)

// NextName is the name a rescale gives the successor of topic: "<topic>-r1"
// for a topic no rescale made, "<base>-r<K+1>" for "<base>-r<K>". Each
// rescale's source is the previous one's destination, so names never
// repeat and a rerun finds the destination it started.
func NextName(topic string) string {
	if m := versioned.FindStringSubmatch(topic); m != nil {
		k, err := strconv.Atoi(m[2])
		if err == nil {
			return m[1] + "-r" + strconv.Itoa(k+1)
		}
	}
	return topic + "-r1"
}
