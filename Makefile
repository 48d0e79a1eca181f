# kubemeter: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# The image `make image` builds and the manifests in k8s/ name (a test checks they agree).
IMAGE ?= kubemeter:$(VERSION)
# Where `make push` sends the image, e.g. registry.example.com/platform.
REGISTRY ?=
# The k8s/ overlay `make deploy` applies: empty for k8s/ itself, or overlays/<name>.
OVERLAY ?=
CONTAINER_TOOL ?= podman
export CONTAINER_TOOL

INFLUX_DIR ?= data/influxd
TEST_INFLUX_DIR := $(shell mktemp -u /tmp/kubemeter-test-influx.XXXXXX)
BENCH_INFLUX_DIR := $(shell mktemp -u /tmp/kubemeter-bench-influx.XXXXXX)

# The binary is linked statically against glibc, so the image needs no libc. The flag is given
# for the target only (with --target), so proc-macros, built for the host, stay dynamic.
TARGET := x86_64-unknown-linux-gnu
STATIC_CARGO := CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" cargo
RELEASE_BIN := target/$(TARGET)/release/kubemeter
# `make run KUBEMETER=path/to/kubemeter` runs that binary instead of building one.
KUBEMETER ?=

.PHONY: help run test bench fmt lint release image image-name push deploy influxd-stop

help:
	@echo "make run          - the demo: a local InfluxDB, a simulated cluster with a day of history, the collector and the server"
	@echo "make test         - every test: a private influxd, PostgreSQL if KUBEMETER_TEST_POSTGRES_URL is set, headless Chromium, the image, the manifests"
	@echo "make bench        - the benchmarks (release build), printing ratios measured in one run"
	@echo "make fmt          - format the sources with rustfmt"
	@echo "make lint         - check formatting and run clippy with warnings as errors"
	@echo "make release      - the statically linked release binary, $(RELEASE_BIN)"
	@echo "make image        - the container image $(IMAGE) from that binary (CONTAINER_TOOL=podman or docker)"
	@echo "make image-name   - print the image name the manifests in k8s/ use"
	@echo "make push         - tag the image as REGISTRY/$(IMAGE) and push it (REGISTRY=registry.example.com/team)"
	@echo "make deploy       - kubectl apply k8s/ (or OVERLAY=overlays/all-in-one …) with the pushed image"
	@echo "make influxd-stop - stop the demo's influxd if one was left running"

# The demo keeps its InfluxDB data in $(INFLUX_DIR) and stops influxd when you press Ctrl-C.
run:
	@url=$$(scripts/influxd.sh start $(INFLUX_DIR)) && \
	trap 'scripts/influxd.sh stop $(INFLUX_DIR)' EXIT INT TERM && \
	bin="$(KUBEMETER)" && \
	if [ -z "$$bin" ]; then $(MAKE) --no-print-directory release && bin=$(RELEASE_BIN); fi && \
	INFLUXDB_URL=$$url KUBEMETER_LOG_DIR=$${KUBEMETER_LOG_DIR-./logs} "$$bin" demo

# One build profile for everything `make test` checks: the tests, and the image built from the
# same (static, debug) binary they run, so the image costs no second compilation of the crates.
test:
	@scripts/browser.sh && scripts/image.sh tools && \
	url=$$(scripts/influxd.sh start $(TEST_INFLUX_DIR)) && \
	trap 'scripts/influxd.sh stop $(TEST_INFLUX_DIR); rm -rf $(TEST_INFLUX_DIR)' EXIT && \
	KUBEMETER_TEST_INFLUX_URL=$$url $(STATIC_CARGO) test --target $(TARGET) --all-targets --no-fail-fast

bench:
	@url=$$(scripts/influxd.sh start $(BENCH_INFLUX_DIR)) && \
	trap 'scripts/influxd.sh stop $(BENCH_INFLUX_DIR); rm -rf $(BENCH_INFLUX_DIR)' EXIT && \
	KUBEMETER_BENCH_INFLUX_URL=$$url KUBEMETER_BENCH_INFLUX_PID=$$(cat $(BENCH_INFLUX_DIR)/pid) cargo bench --bench api_latency --bench collector --bench billing

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

release:
	$(STATIC_CARGO) build --release --target $(TARGET) --bin kubemeter

image: release
	scripts/image.sh build $(RELEASE_BIN) $(IMAGE)

image-name:
	@echo $(IMAGE)

push:
	@[ -n "$(REGISTRY)" ] || { echo "set REGISTRY, e.g. make push REGISTRY=registry.example.com/team" >&2; exit 2; }
	$(CONTAINER_TOOL) tag $(IMAGE) $(REGISTRY)/$(IMAGE)
	$(CONTAINER_TOOL) push $(REGISTRY)/$(IMAGE)

# A throw-away kustomization over the chosen overlay that swaps in the pushed image's name.
deploy:
	@[ -n "$(REGISTRY)" ] || { echo "set REGISTRY to where make push sent the image" >&2; exit 2; }
	@mkdir -p target/deploy && \
	printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../k8s/$(OVERLAY)\nimages:\n  - name: kubemeter\n    newName: $(REGISTRY)/kubemeter\n    newTag: "$(VERSION)"\n' \
	  > target/deploy/kustomization.yaml && \
	kubectl apply -k target/deploy

influxd-stop:
	scripts/influxd.sh stop $(INFLUX_DIR)
