#!/usr/bin/env bash
# build.sh: builds the benchmark's Kafka Streams peer with Maven (pom.xml;
# its jars come from Maven Central) and prints the Java class path to run it
# with: java -cp "$(test/peer/kstreams/build.sh)" triggerd.peer.kstreams.Main
#
# The build is cached in .cache/build-<checksum of pom.xml and src/>: a
# second run, or one without network, reuses it; a changed source builds
# afresh. Needs a Java 17+ JDK and mvn the first time. A failed build exits
# non-zero with Maven's output (the benchmark fails with it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
sum=$( (cat pom.xml; find src -type f | LC_ALL=C sort | xargs cat) | cksum | cut -d' ' -f1)
out=$here/.cache/build-$sum
classpath="$out/kstreams-peer.jar:$out/lib/*"
if [[ -f $out/built ]]; then
	echo "$classpath"
	exit 0
fi
die() { echo "kstreams peer: $*" >&2; exit 1; }
command -v javac >/dev/null 2>&1 || die "javac not found: the Kafka Streams peer needs a Java 17+ JDK, e.g. apt-get install openjdk-17-jdk-headless"
command -v mvn >/dev/null 2>&1 || die "mvn not found: the Kafka Streams peer is built with Maven, e.g. apt-get install maven"
mkdir -p .cache
log=.cache/mvn.log
# A fresh target/: copy-dependencies would leave a jar of an earlier
# dependency set in target/lib.
rm -rf target .cache/build-*
if ! mvn -q -B package >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	die "mvn package failed (full output: $here/$log)"
fi
mkdir -p "$out"
cp target/kstreams-peer-1.jar "$out/kstreams-peer.jar"
cp -r target/lib "$out/lib"
rm -rf target
touch "$out/built"
echo "$classpath"
