#!/usr/bin/env bash
# broker.sh: a real single-broker Apache Kafka cluster (KRaft: one broker
# and, in a process of its own, one controller) on loopback for the
# end-to-end and system tests.
#
#   test/kafka/broker.sh start    fetch jars if needed, start, wait until up;
#                                 last stdout line is the bootstrap address
#   test/kafka/broker.sh stop     stop the broker and the controller and
#                                 delete their data
#   test/kafka/broker.sh restart [term|kill]
#                                 stop the broker (SIGTERM or SIGKILL) and
#                                 start it again with its data, same address;
#                                 the controller runs on (see cmd_restart)
#   test/kafka/broker.sh status   exit 0 if the broker is running
#   test/kafka/broker.sh env      print TRIGGERD_KAFKA_BROKERS=ADDR
#   test/kafka/broker.sh pid      print the broker's process ID (the
#                                 benchmarks measure its CPU time)
#   test/kafka/broker.sh scram    print the SASL/SCRAM listener's settings
#                                 (KAFKA_SCRAM_BROKERS=ADDR, mechanism, user,
#                                 password), one NAME=VALUE a line
#   test/kafka/broker.sh tool NAME [ARGS...]
#                                 run a Kafka command-line tool (NAME as in
#                                 the distribution's bin/: kafka-transactions.sh,
#                                 kafka-topics.sh, ...; see tool_class) against
#                                 the broker; --bootstrap-server ADDR is added
#                                 when ARGS have none
#
# Besides the PLAINTEXT listener (the bootstrap address above, no
# authentication), the broker has a SASL_SSL listener two ports up: TLS with
# a certificate signed by a CA made at start (run/tls/ca.pem), and
# SCRAM-SHA-512 for the user "triggerd", created when the storage is
# formatted. Its settings are also in the run directory's file "scram", which
# the TLS + SCRAM end-to-end test reads.
#
# The controller is a process of its own, as in production, so that a
# broker's crash is a broker's crash, not the whole cluster's: see
# cmd_restart.
#
# The Kafka jars come from Maven Central through pom.xml (no distribution
# tarball) and are cached under test/kafka/.cache/kafka-<version>/jars; the
# broker's config, data and log live in test/kafka/.cache/run. Needs Java 17+,
# and mvn the first time. Environment: KAFKA_START_TIMEOUT (seconds, default
# 90), KAFKA_HEAP_OPTS (default -Xms256m -Xmx768m).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pom=$here/pom.xml
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")
cache=$here/.cache
jars=$cache/kafka-$kafka_version/jars
marker=$cache/kafka-$kafka_version/fetched # holds the checksum of the pom it was fetched with
run=$cache/run
data=$run/data
props=$run/server.properties
pidfile=$run/broker.pid
cdata=$run/controller-data # the controller's metadata log
cprops=$run/controller.properties
cpidfile=$run/controller.pid
clogdir=$run/controller # its server.log and JVM output
bootfile=$run/bootstrap
scramfile=$run/scram # the SCRAM listener's settings (cmd_scram)
tls=$run/tls         # the test CA and the broker's key and certificate
scram_mechanism=SCRAM-SHA-512
scram_user=triggerd
scram_password=triggerd-test-secret # a loopback test broker: not a secret
log=$run/server.log # written by log4j2, see log4j2.properties
out=$run/broker.out # the JVM's own stdout/stderr
gclog=$run/gc.log   # the JVM's garbage collections and their pauses
timeout=${KAFKA_START_TIMEOUT:-90}
heap=${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
java=${JAVA_HOME:+$JAVA_HOME/bin/}java
jvm_common=(-Djava.awt.headless=true "-Dlog4j2.configurationFile=$here/log4j2.properties" -cp "$jars/*")

die() { echo "kafka: $*" >&2; exit 1; }

need_java() {
	command -v "$java" >/dev/null 2>&1 ||
		die "java not found (PATH or JAVA_HOME); the test broker needs a Java 17+ runtime, e.g. apt-get install openjdk-17-jre-headless"
	local v
	v=$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
	[[ ${v%%.*} =~ ^[0-9]+$ && ${v%%.*} -ge 17 ]] ||
		die "Kafka $kafka_version needs Java 17 or newer, found '${v:-unknown}' ($java)"
}

# fetch_jars resolves the broker's runtime class path into $jars unless a
# complete fetch for this exact pom is already cached.
fetch_jars() {
	local sum
	sum=$(cksum <"$pom")
	if [[ -f $marker && $(<"$marker") == "$sum" ]]; then
		return
	fi
	command -v mvn >/dev/null 2>&1 ||
		die "mvn not found on PATH; Maven is needed once to fetch the Kafka $kafka_version jars from Maven Central, e.g. apt-get install maven"
	echo "kafka: fetching Kafka $kafka_version jars with Maven" >&2
	local s0=$SECONDS
	rm -rf "$jars" "$marker"
	mkdir -p "$jars"
	local mlog=$cache/kafka-$kafka_version/mvn.log
	if ! mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$jars" >"$mlog" 2>&1; then
		tail -n 40 "$mlog" >&2
		die "mvn could not fetch the Kafka jars (full output: $mlog)"
	fi
	echo "$sum" >"$marker"
	echo "kafka: fetched $(ls "$jars" | wc -l | tr -d ' ') jars in $((SECONDS - s0))s" >&2
}

# node_pid prints the pid recorded in pid file $1 if that process is
# running Kafka on config $2, so that a stale pid file never leads to
# signalling an unrelated process.
node_pid() {
	[[ -f $1 ]] || return 1
	local pid
	pid=$(<"$1")
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r /proc/$pid/cmdline ]]; then
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $2" || return 1
	fi
	echo "$pid"
}

# broker_pid and controller_pid print the pids of our running nodes.
broker_pid() { node_pid "$pidfile" "$props"; }
controller_pid() { node_pid "$cpidfile" "$cprops"; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# port_free: nothing listens on the port and (where /proc exists) no socket
# uses it as its local port, which would make the broker's bind fail.
port_free() {
	local hex
	hex=$(printf ':%04X ' "$1")
	! grep -qs -- "$hex" /proc/net/tcp /proc/net/tcp6 && ! listening "$1"
}

# pick_ports sets port, cport and sport (client, controller, SASL/SCRAM) to
# three free consecutive ports below the Linux ephemeral range, so outgoing
# connections do not take them in the meantime.
pick_ports() {
	local i
	for ((i = 0; i < 100; i++)); do
		port=$((20000 + RANDOM % 12000))
		cport=$((port + 1))
		sport=$((port + 2))
		if port_free "$port" && port_free "$cport" && port_free "$sport"; then
			return
		fi
	done
	die "no free loopback port triple found in 20000-32002"
}

# cluster_id makes a Kafka Uuid (16 random bytes, URL-safe base64 without
# padding) in the shell, saving a JVM start for "StorageTool random-uuid".
# Like Kafka, it avoids IDs starting with '-', which CLIs take for a flag.
cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
		[[ $id == -* ]] || break
	done
	echo "$id"
}

# write_props writes the controller's and the broker's configs. The
# controller (node 2) only keeps the metadata log and decides leadership; the
# broker (node 1) serves the clients.
write_props() {
	cat >"$cprops" <<EOF
# Written by test/kafka/broker.sh; rewritten on every start.
process.roles=controller
node.id=2
controller.quorum.voters=2@127.0.0.1:$cport
listeners=CONTROLLER://127.0.0.1:$cport
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT
log.dirs=$cdata
EOF
	cat >"$props" <<EOF
# Written by test/kafka/broker.sh; rewritten on every start.
process.roles=broker
node.id=1
controller.quorum.voters=2@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_SSL://127.0.0.1:$sport
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=PLAINTEXT

# TLS and SASL/SCRAM for clients on the SASL_SSL listener: the server's key
# and certificate (PEM, signed by a CA made at start, see make_tls), and the
# SCRAM user, created in the metadata log when the storage is formatted
# (launch). No authorizer: an authenticated user may do anything, as on the
# PLAINTEXT listener.
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$tls/server.pem
sasl.enabled.mechanisms=$scram_mechanism
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$data

# One node: every internal topic has one replica. Few partitions for the
# internal topics keep the first group/transaction fast to set up.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# Tests create their topics explicitly (co-partitioning is checked at start).
auto.create.topics.enable=false
num.partitions=1

# One broker: a controlled shutdown cannot move its partitions' leadership
# to another replica, it only leaves every partition without a leader while
# the broker's transaction coordinator still runs. Kafka 4.4's coordinator
# takes a partition without a leader for a deleted one and completes a
# transaction without that partition's marker ("Couldn't find leader
# endpoint ... likely deleted already and hence can be skipped"), which
# leaves a hanging transaction holding the partition's last stable offset.
# (KRaftMetadataCache.getPartitionLeaderEndpoint returns no endpoint at all
# for leader -1, where the Scala version returned Node.noNode and the
# markers waited for a leader.) So SIGTERM stops the broker without it: the
# coordinator stops with the broker and the partitions come back with it,
# as they do on a production cluster, where a controlled shutdown hands the
# leadership to other replicas.
controlled.shutdown.enable=false

# Faster group changes than production defaults, for the rebalance tests.
group.initial.rebalance.delay.ms=0
group.consumer.min.heartbeat.interval.ms=1000
group.consumer.heartbeat.interval.ms=1000
group.consumer.min.session.timeout.ms=6000
group.consumer.session.timeout.ms=10000
log.retention.check.interval.ms=10000
EOF
}

elapsed_ms() {
	local now
	now=${EPOCHREALTIME:-$(date +%s).000000}
	now=${now/[.,]/}
	echo $(((now - t0) / 1000))
}

# launch starts one broker on a fresh port pair and waits for it. Returns 0
# when up, 2 when a port was taken between the check and the bind (worth a
# retry), 1 on any other failure; on failure the broker is gone.
launch() {
	pick_ports
	rm -rf "$data" "$cdata" "$clogdir" "$log" "$log".* "$out" "$bootfile" "$scramfile" "$pidfile" "$cpidfile" "$run/format" "$run/format.out"
	mkdir -p "$data" "$cdata" "$clogdir"
	make_tls || return 1
	write_props
	# One cluster ID for both; the SCRAM user and the feature levels go
	# into the controller's bootstrap metadata.
	local id
	id=$(cluster_id)
	# shellcheck disable=SC2086 # KAFKA_FORMAT_FEATURES holds several arguments
	if ! "$java" -Xmx256m "-Dkafka.logs.dir=$run/format" "${jvm_common[@]}" \
		kafka.tools.StorageTool format -t "$id" -c "$cprops" ${KAFKA_FORMAT_FEATURES:-} \
		--add-scram "$scram_mechanism=[name=$scram_user,password=$scram_password]" \
		>"$run/format.out" 2>&1 ||
		! "$java" -Xmx256m "-Dkafka.logs.dir=$run/format" "${jvm_common[@]}" \
			kafka.tools.StorageTool format -t "$id" -c "$props" >>"$run/format.out" 2>&1; then
		tail -n 40 "$run/format/server.log" "$run/format.out" >&2
		echo "kafka: formatting the storage failed" >&2
		return 1
	fi
	run_controller
	run_broker
}

# run_controller starts the controller's JVM on the existing config and data
# (it listens on $cport; the broker waits for it).
run_controller() {
	rm -f "$clogdir/server.log" "$clogdir/controller.out"
	nohup "$java" -Xms64m -Xmx256m -server "-Dkafka.logs.dir=$clogdir" "${jvm_common[@]}" kafka.Kafka "$cprops" \
		>"$clogdir/controller.out" 2>&1 </dev/null &
	echo "$!" >"$cpidfile"
}

# run_broker starts the JVM on the existing config and data and waits until
# it has started and listens. Returns as launch does.
run_broker() {
	# The logs of the previous incarnation stay, as server.log.N.
	if [[ -s $log ]]; then
		local n=1
		while [[ -e $log.$n ]]; do n=$((n + 1)); done
		mv "$log" "$log.$n"
	fi
	rm -f "$out" "$gclog"
	# The GC log tells a broker's own pauses from the processor's when a
	# benchmark or a test sees a stall.
	# shellcheck disable=SC2086 # heap holds several JVM options
	nohup "$java" $heap -server "-Xlog:gc:file=$gclog:uptime,time" "-Dkafka.logs.dir=$run" "${jvm_common[@]}" kafka.Kafka "$props" \
		>"$out" 2>&1 </dev/null &
	local pid=$!
	echo "$pid" >"$pidfile"
	while (($(elapsed_ms) < timeout * 1000)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null || true
			if grep -qs 'Address already in use' "$log" "$out"; then
				echo "kafka: port $port, $cport or ${sport:-?} was taken meanwhile, retrying" >&2
				return 2
			fi
			fail "the broker exited during start-up"
			return 1
		fi
		if ! controller_pid >/dev/null; then
			if grep -qs 'Address already in use' "$clogdir/server.log" "$clogdir/controller.out"; then
				echo "kafka: port $cport was taken meanwhile, retrying" >&2
				cmd_stop
				return 2
			fi
			fail "the controller exited"
			return 1
		fi
		if grep -qs 'Kafka Server started' "$log" && listening "$port"; then
			return 0
		fi
		sleep 0.2
	done
	fail "the broker did not come up within ${timeout}s"
	return 1
}

fail() {
	{
		echo "kafka: $1; last lines of $log:"
		tail -n 60 "$log" 2>/dev/null || true
		if [[ -s $out ]]; then
			echo "kafka: JVM output ($out):"
			tail -n 20 "$out"
		fi
		echo "kafka: last lines of the controller's log, $clogdir/server.log:"
		tail -n 20 "$clogdir/server.log" 2>/dev/null || true
	} >&2
	cmd_stop
}

cmd_start() {
	if broker_pid >/dev/null; then
		echo "kafka: broker already running at $(<"$bootfile")" >&2
		cat "$bootfile"
		return
	fi
	need_java
	fetch_jars
	cmd_stop
	mkdir -p "$run"
	t0=${EPOCHREALTIME:-$(date +%s).000000}
	t0=${t0/[.,]/}
	local attempt rc
	for attempt in 1 2 3; do
		rc=0
		launch || rc=$?
		if ((rc == 0)); then
			local ms addr=127.0.0.1:$port
			ms=$(elapsed_ms)
			echo "$addr" >"$bootfile"
			write_scram
			printf 'kafka: broker %s up at %s in %d.%01ds\n' "$kafka_version" "$addr" \
				$((ms / 1000)) $((ms % 1000 / 100)) >&2
			echo "$addr"
			return
		fi
		((rc == 2)) || exit 1
		terminate kill controller
	done
	fail "giving up after $attempt attempts"
	exit 1
}

# terminate ends the broker process (with $2 = controller: the
# controller's): SIGTERM (a clean shutdown, up to 30 s) or, with "kill",
# SIGKILL at once, like a crashed machine.
terminate() {
	local pid i how=${1:-term}
	if [[ ${2:-broker} == controller ]]; then
		pid=$(controller_pid) || return 0
	else
		pid=$(broker_pid) || return 0
	fi
	if [[ $how == term ]]; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 150; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "kafka: broker $pid ignored SIGTERM for 30s, killing it" >&2
		fi
	fi
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
}

cmd_stop() {
	# The broker first: its clean shutdown asks the controller.
	terminate term
	terminate term controller
	rm -rf "$data" "$cdata" "$pidfile" "$cpidfile" "$bootfile" "$scramfile"
}

# make_tls makes a throwaway CA and, signed by it, the broker's key and
# certificate for 127.0.0.1 (PEM: Kafka reads the key and the chain from one
# file). Clients trust the CA's certificate, $tls/ca.pem.
make_tls() {
	command -v openssl >/dev/null 2>&1 || { echo "kafka: openssl not found (apt-get install openssl)" >&2; return 1; }
	rm -rf "$tls"
	mkdir -p "$tls"
	(
		cd "$tls"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=triggerd test CA" &&
			openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1" &&
			printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext &&
			openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext &&
			openssl pkcs8 -topk8 -nocrypt -in server.key -out server.pk8 &&
			cat server.pk8 server.crt ca.pem >server.pem
	) >"$run/tls.out" 2>&1 || { cat "$run/tls.out" >&2; echo "kafka: making the test certificates failed" >&2; return 1; }
}

# write_scram records the SCRAM listener's settings for the tests, with the
# PLAINTEXT bootstrap address so a reader can tell they belong to this broker.
write_scram() {
	cat >"$scramfile" <<EOF
KAFKA_SCRAM_BROKERS=127.0.0.1:$sport
KAFKA_SCRAM_MECHANISM=$scram_mechanism
KAFKA_SCRAM_USER=$scram_user
KAFKA_SCRAM_PASSWORD=$scram_password
KAFKA_SCRAM_CA=$tls/ca.pem
KAFKA_PLAINTEXT_BROKERS=127.0.0.1:$port
EOF
}

cmd_scram() {
	broker_pid >/dev/null || die "broker not running (start it with $0 start)"
	[[ -f $scramfile ]] || die "no SCRAM settings in $scramfile (a broker started by an older broker.sh?)"
	cat "$scramfile"
}

# cmd_restart stops the running broker (SIGTERM, or SIGKILL with "kill")
# and starts it again on the same address with the same data, as after a
# broker restart in production. Prints the seconds it was away.
#
# The controller runs on meanwhile, as a production cluster's controller
# quorum does, and fences the stopped broker when its session times out
# (broker.session.timeout.ms, 9 s; a SIGTERM'd broker does not tell it, see
# controlled.shutdown.enable in write_props). The restart waits for that:
# a broker that came back sooner would serve for a while on the metadata of
# its previous incarnation, its transaction coordinator resending markers,
# until the controller fenced that incarnation and left the partitions
# without a leader, and the coordinator would drop the markers (see
# write_props): a hanging transaction. With the controller in the broker's
# process, killed with it, that is what happened after every SIGKILL.
cmd_restart() {
	broker_pid >/dev/null || die "broker not running (start it with $0 start)"
	controller_pid >/dev/null || die "controller not running (stop, then start again with $0 start)"
	local how=${1:-term} addr fenced i
	addr=$(<"$bootfile")
	port=${addr##*:}
	t0=${EPOCHREALTIME:-$(date +%s).000000}
	t0=${t0/[.,]/}
	fenced=$(grep -cs 'Fencing broker 1 ' "$clogdir/server.log" || true)
	terminate "$how"
	for ((i = 0; i < 300; i++)); do
		(($(grep -cs 'Fencing broker 1 ' "$clogdir/server.log" || true) > fenced)) && break
		sleep 0.1
	done
	((i < 300)) || echo "kafka: the controller did not fence the stopped broker within 30s" >&2
	sleep "${KAFKA_RESTART_PAUSE:-2}"
	run_broker || die "the broker did not come back after a restart"
	local ms
	ms=$(elapsed_ms)
	printf 'kafka: broker restarted (%s) at %s, away %d.%01ds\n' "$how" "$addr" $((ms / 1000)) $((ms % 1000 / 100)) >&2
}

cmd_status() {
	if broker_pid >/dev/null && controller_pid >/dev/null; then
		echo "kafka: broker running at $(<"$bootfile")"
	else
		echo "kafka: broker not running"
		return 1
	fi
}

cmd_env() {
	broker_pid >/dev/null || die "broker not running (start it with $0 start)"
	echo "TRIGGERD_KAFKA_BROKERS=$(<"$bootfile")"
}

# tool_class maps a tool's name, as in the Kafka distribution's bin/ (with or
# without "kafka-" and ".sh"), to its main class (kafka-tools jar).
tool_class() {
	local n=${1%.sh}
	n=${n#kafka-}
	case $n in
	transactions) echo org.apache.kafka.tools.TransactionsCommand ;;
	topics) echo org.apache.kafka.tools.TopicCommand ;;
	consumer-groups) echo org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
	configs) echo org.apache.kafka.tools.ConfigCommand ;;
	features) echo org.apache.kafka.tools.FeatureCommand ;;
	get-offsets) echo org.apache.kafka.tools.GetOffsetShell ;;
	console-consumer) echo org.apache.kafka.tools.consumer.ConsoleConsumer ;;
	dump-log) echo org.apache.kafka.tools.DumpLogSegments ;;
	*) return 1 ;;
	esac
}

tools="transactions, topics, consumer-groups, configs, features, get-offsets, console-consumer, dump-log"

# cmd_tool runs a Kafka tool against this broker, e.g. the abort command a
# processor logs for a hanging transaction:
#   broker.sh tool kafka-transactions.sh abort --topic T --partition 0 --start-offset 42
# The tool's own --bootstrap-server wins when given; dump-log reads files
# (run/data/TOPIC-PARTITION/*.log) and needs none.
cmd_tool() {
	(($# > 0)) || die "usage: $0 tool NAME [ARGS...], NAME one of: $tools"
	local class
	class=$(tool_class "$1") || die "unknown tool '$1'; known: $tools"
	shift
	need_java
	fetch_jars
	local args=("$@") a
	if [[ $class != *DumpLogSegments ]]; then
		local has=0
		for a in "$@"; do
			[[ $a == --bootstrap-server || $a == --bootstrap-server=* ]] && has=1
		done
		if ((has == 0)); then
			broker_pid >/dev/null || die "broker not running (start it with $0 start)"
			# Before the subcommand: kafka-transactions.sh takes it there.
			args=(--bootstrap-server "$(<"$bootfile")" "$@")
		fi
	fi
	exec "$java" -Xmx256m -Djava.awt.headless=true "-Dlog4j2.configurationFile=$here/log4j2-tools.properties" \
		-cp "$jars/*" "$class" "${args[@]}"
}

cmd_pid() {
	broker_pid || die "broker not running (start it with $0 start)"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
restart) cmd_restart "${2:-term}" ;;
status) cmd_status ;;
env) cmd_env ;;
pid) cmd_pid ;;
scram) cmd_scram ;;
tool)
	shift
	cmd_tool "$@"
	;;
*)
	echo "usage: $0 start|stop|restart [term|kill]|status|env|pid|scram|tool NAME [ARGS...]" >&2
	exit 2
	;;
esac
