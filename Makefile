# kubemeter: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

INFLUX_DIR ?= data/influxd
TEST_INFLUX_DIR := $(shell mktemp -u /tmp/kubemeter-test-influx.XXXXXX)
BENCH_INFLUX_DIR := $(shell mktemp -u /tmp/kubemeter-bench-influx.XXXXXX)

.PHONY: help run test bench fmt lint influxd-stop

help:
	@echo "make run    - the demo: a local InfluxDB with a demo cluster, and kubemeter serving it"
	@echo "make test   - every test, against a private influxd and a headless Chromium (installed if missing)"
	@echo "make bench  - the benchmarks (release build), printing ratios measured in one run"

# The demo keeps its InfluxDB data in $(INFLUX_DIR) and stops influxd when you press Ctrl-C.
run:
	@url=$$(scripts/influxd.sh start $(INFLUX_DIR)) && \
	trap 'scripts/influxd.sh stop $(INFLUX_DIR)' EXIT INT TERM && \
	cargo build --release --bin kubemeter && \
	INFLUXDB_URL=$$url KUBEMETER_LOG_DIR=$${KUBEMETER_LOG_DIR:-./logs} \
	./target/release/kubemeter demo

test:
	@scripts/browser.sh && \
	url=$$(scripts/influxd.sh start $(TEST_INFLUX_DIR)) && \
	trap 'scripts/influxd.sh stop $(TEST_INFLUX_DIR); rm -rf $(TEST_INFLUX_DIR)' EXIT && \
	KUBEMETER_TEST_INFLUX_URL=$$url cargo test --all-targets --no-fail-fast

bench:
	@url=$$(scripts/influxd.sh start $(BENCH_INFLUX_DIR)) && \
	trap 'scripts/influxd.sh stop $(BENCH_INFLUX_DIR); rm -rf $(BENCH_INFLUX_DIR)' EXIT && \
	KUBEMETER_BENCH_INFLUX_URL=$$url KUBEMETER_BENCH_INFLUX_PID=$$(cat $(BENCH_INFLUX_DIR)/pid) cargo bench --bench api_latency --bench collector --bench billing

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

influxd-stop:
	scripts/influxd.sh stop $(INFLUX_DIR)
