# triggerd: build, demo, tests.
#
#   make demo   the whole system in-process (kfake, traffic, processor) for 60 s
#   make test   unit tests, short fuzzing, end-to-end on kfake, then end-to-end
#               and system tests on a real Apache Kafka broker (fetched from
#               Maven Central by test/kafka/broker.sh)
#   make test-deploy  the Helm chart, manifests, alert rules and dashboard
#   make bench  micro-benchmarks (state, schemas, rules), then the Kafka
#               benchmarks (test/bench) on a real broker and kfake, with the
#               goka and Kafka Streams peers (the latter needs a Java 17+
#               JDK and Maven: docs/kstreams-peer.md); BENCH=regexp picks
#   make bench-quick  the workload benchmark's table at small sizes (< 2 min)

GO        ?= go
DEMO_ARGS ?= --duration 60s
FUZZTIME  ?= 5s
UNIT_PKGS  = $(shell $(GO) list ./... | grep -v /test/)

.PHONY: all build demo test bench bench-kafka bench-quick test-unit test-fuzz test-e2e test-e2e-kfake test-kafka test-system test-deploy kafka-run vet clean

all: build

build:
	$(GO) build -o bin/triggerd ./cmd/triggerd

# The first build compiles Pebble, franz-go and cel-go: minutes on a fresh
# machine, silent without the line before it.
demo:
	@echo "make demo: compiling triggerd (the first build on a fresh machine takes a few minutes)..."
	$(GO) build -o bin/triggerd ./cmd/triggerd
	bin/triggerd demo $(DEMO_ARGS)

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: vet test-unit test-fuzz test-deploy test-e2e

test-unit:
	$(GO) test -race -count=1 $(UNIT_PKGS)

# Each fuzz target for a short, bounded time on top of its committed corpus.
test-fuzz:
	test/fuzz/run.sh "$(GO)" "$(FUZZTIME)"

# The Helm chart renders and its manifests pass kubeconform's schemas
# (strict), the alert rules pass promtool, the dashboard and alerts name only
# real metrics (test/deploy/check.sh; tools cached in test/deploy/.cache).
test-deploy:
	GO=$(GO) test/deploy/check.sh

test-e2e: test-e2e-kfake test-kafka

# End-to-end tests on franz-go's in-process kfake, and the harness's own tests.
test-e2e-kfake:
	env -u TRIGGERD_KAFKA_BROKERS $(GO) test -count=1 -timeout 15m ./test/e2e/... ./test/layout/... ./test/harness/...

# The end-to-end tests again, and the system tests, on a real Apache Kafka
# broker each: the system scenarios start on a fresh cluster, not on the
# thousands of topics and transactional IDs the end-to-end tests leave,
# which make each broker restart of the scenarios slower (DESIGN.md,
# "Things that will bite you": input written twice). A broker that cannot
# start fails the target: it is never skipped. The verbose log
# goes to a file; the summary lines (crash: ..., restart: ...) and the
# verdicts are printed. Both parts run; either failing fails the target.
test-kafka:
	@rc=0; \
	$(MAKE) --no-print-directory kafka-run PKGS="./test/e2e/..." RUN=e2e || rc=1; \
	$(MAKE) --no-print-directory kafka-run PKGS="./test/system/..." RUN=system || rc=1; \
	exit $$rc

# Only the system tests (crash, ...) on a real broker.
test-system:
	@$(MAKE) --no-print-directory kafka-run PKGS="./test/system/..."

# RUN names the log (test/kafka/.cache/test-RUN.log).
RUN ?= kafka
kafka-run:
	@set -e; \
	addr=$$(test/kafka/broker.sh start); \
	trap 'test/kafka/broker.sh stop' EXIT; \
	echo "real Kafka broker at $$addr"; \
	log=test/kafka/.cache/test-$(RUN).log; rc=0; \
	stamp=test/kafka/.cache/test-$(RUN).start; touch $$stamp; \
	TRIGGERD_KAFKA_BROKERS=$$addr $(GO) test -p 1 -count=1 -v -timeout 25m $(PKGS) >$$log 2>&1 || rc=$$?; \
	grep -E '^(--- |ok |FAIL)|^ +--- |(crash|restart|poison|rebalance|retention|repartition|rescale)[a-z-]*: ' $$log || true; \
	if [ $$rc -ne 0 ]; then \
		echo "--- output of each failed test (whole lines; full output: $$log):"; \
		awk '/^=== RUN/ { buf = "" } { buf = buf $$0 "\n" } /^--- FAIL/ { printf "%s", buf; buf = "" }' $$log; \
		echo "--- tail of $$log:"; tail -n 30 $$log; \
		echo "--- work directories kept by the failed tests (processor logs, configs, state):"; \
		find test/kafka/.cache/tests -mindepth 1 -maxdepth 1 -newer $$stamp 2>/dev/null || true; \
		echo "--- the broker's log: test/kafka/.cache/run/server.log (server.log.N: before its Nth restart); the controller's: test/kafka/.cache/run/controller/server.log"; \
	fi; \
	exit $$rc

# Benchmarks: the hot-path micro-benchmarks, then those that need Kafka, on
# a real broker. Figures are printed; nothing asserts a wall time.
BENCH ?= .
bench:
	$(GO) test -run='^$$' -bench='$(BENCH)' -benchmem -count=1 ./state/ ./schemas/ ./rules/...
	@$(MAKE) --no-print-directory bench-kafka

# BenchmarkWorkload's sizes (test/bench/settings_test.go): the issue's
# 1,000,000 customers; a 2,000,000-event backlog; 10,000,000 customers with
# one pending timer each seeded into the changelog (restore rate, pending
# timers, peak RSS; 2,000,000 on kfake, which holds them in the benchmark's
# memory). Override any of them on the command line.
BENCH_SIZES ?= BENCH_CUSTOMERS=1000000 BENCH_EVENTS=2000000 BENCH_STATE_CUSTOMERS=10000000 BENCH_LIVE=30s BENCH_RESCALE_CUSTOMERS=1000000
bench-kafka:
	@set -e; \
	addr=$$(test/kafka/broker.sh start); \
	trap 'test/kafka/broker.sh stop' EXIT; \
	echo "real Kafka broker at $$addr"; \
	env $(BENCH_SIZES) TRIGGERD_KAFKA_BROKERS=$$addr BENCH_BROKER_PID=$$(test/kafka/broker.sh pid) $(GO) test -run='^$$' -bench='$(BENCH)' -benchtime=1x -benchmem -count=1 -timeout 120m ./test/bench/...

# The workload table at small sizes, on the real broker and kfake, with the
# goka peer: a smoke run of the whole benchmark, not figures to quote.
bench-quick:
	@set -e; \
	addr=$$(test/kafka/broker.sh start); \
	trap 'test/kafka/broker.sh stop' EXIT; \
	echo "real Kafka broker at $$addr"; \
	BENCH_CUSTOMERS=20000 BENCH_EVENTS=40000 BENCH_STATE_CUSTOMERS=20000 BENCH_LIVE=5s BENCH_WARMUP=2s BENCH_SATURATE=3s \
	TRIGGERD_KAFKA_BROKERS=$$addr BENCH_BROKER_PID=$$(test/kafka/broker.sh pid) $(GO) test -run='^$$' -bench='^BenchmarkWorkload$$' -benchtime=1x -count=1 -timeout 10m ./test/bench/

clean:
	rm -rf bin
	test/kafka/broker.sh stop
