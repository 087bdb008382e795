# zoho-desk-cdc — every target is idempotent and safe to re-run. Downloads and runtime files live in .cache/.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help build run test kafka-up kafka-down registry-up registry-down sim sim-down down bench chaos deploy-check

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

build: ## Build the bridge and the simulator (release).
	$(CARGO) build --release --bins

run: build ## Start Kafka, the registry and the simulator, then run the bridge on config/local.toml until Ctrl-C.
	@scripts/run.sh

test: ## fmt check, clippy -D warnings, unit and integration tests against a real broker and registry.
	@scripts/test.sh

kafka-up: ## Start a single-node Apache Kafka (KRaft) on 127.0.0.1:9092.
	@scripts/services.sh kafka-up

kafka-down: ## Stop the Kafka broker started by kafka-up.
	@scripts/services.sh kafka-down

registry-up: ## Start the schema registry (Apicurio, Confluent API) on 127.0.0.1:8081.
	@scripts/services.sh registry-up

registry-down: ## Stop the schema registry started by registry-up.
	@scripts/services.sh registry-down

sim: build ## Start the ZoHo Desk simulator on 127.0.0.1:8900 in the background.
	@scripts/services.sh sim-up

sim-down: ## Stop the simulator started by `make sim`.
	@scripts/services.sh sim-down

down: sim-down registry-down kafka-down ## Stop everything the targets above started.

bench: ## Snapshot and webhook throughput, latency, CPU and memory vs Kafka's own ceiling (target/bench/report.json).
	@scripts/bench.sh

chaos: ## Property tests and fuzz targets with many cases, then the fault-injection scenarios (tests/faults.rs ...) with a CHAOS summary table.
	@scripts/chaos.sh

deploy-check: ## Render deploy/overlays/* with kustomize and validate every object offline (Kubernetes schemas, strict).
	@scripts/deploy-check.sh
