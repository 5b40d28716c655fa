#!/usr/bin/env bash
# Fuzzes every Fuzz target of the module's packages (not test/) for
# FUZZTIME each. Usage: test/fuzz/run.sh [go binary] [fuzztime]
#
# A real finding fails the run: Go writes the failing input under the
# package's testdata/fuzz/<target>/ and prints it. One failure is not a
# finding: with a duration -fuzztime, Go's fuzz coordinator can report a bare
# "context deadline exceeded" when the time runs out while a worker is busy
# (go.dev/issue/75804, fixed in Go 1.27, not in 1.26). Such a run wrote no
# input; it is reported, and the target's corpus is replayed instead, which
# must pass.
set -euo pipefail
go=${1:-go}
fuzztime=${2:-5s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for pkg in $($go list ./... | grep -v /test/); do
	for f in $($go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "fuzz $pkg $f ($fuzztime)"
		dir=$($go list -f '{{.Dir}}' "$pkg")/testdata/fuzz/$f
		before=$(ls "$dir" 2>/dev/null | sort || true)
		if $go test -run='^$' -fuzz="^$f\$" -fuzztime="$fuzztime" "$pkg" 2>&1 | tee "$out"; then
			continue
		fi
		after=$(ls "$dir" 2>/dev/null | sort || true)
		if [ "$before" != "$after" ] || ! grep -q '^    context deadline exceeded$' "$out"; then
			echo "fuzz: $f failed: see the output above and the new input in $dir" >&2
			exit 1
		fi
		echo "fuzz: $f: Go's fuzz coordinator reported its own deadline (go.dev/issue/75804) and wrote no failing input; replaying the corpus"
		$go test -count=1 -run="^$f\$" "$pkg"
	done
done
