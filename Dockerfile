# syntax=docker/dockerfile:1
# zoho-desk-cdc — container image.
#   docker build -t registry.example.com/zoho-desk-cdc:0.1.0 .
# Build: the Rust toolchain plus cmake/g++ (librdkafka and aws-lc are compiled from source by cargo).
# Run: debian:bookworm-slim (same glibc as the builder) with CA certificates, as uid 10001, read-only root.
# The image also carries /bin/sh, used by the Kubernetes init container that seeds the credentials file.

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake g++ make pkg-config zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY schemas ./schemas
COPY config ./config
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && cp target/release/zoho-desk-cdc target/release/zoho-desk-sim /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 zoho \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/zoho-desk-cdc --shell /usr/sbin/nologin zoho \
 && mkdir -p /etc/zoho-desk-cdc /var/lib/zoho-desk-cdc \
 && chown 10001:10001 /var/lib/zoho-desk-cdc
COPY --from=builder /out/zoho-desk-cdc /out/zoho-desk-sim /usr/local/bin/
COPY config/example.toml /etc/zoho-desk-cdc/example.toml
USER 10001:10001
WORKDIR /var/lib/zoho-desk-cdc
# 8080: the service URL (Desk webhooks); 9090: admin (/metrics /healthz /readyz /status).
EXPOSE 8080 9090
# SIGTERM drains: intake stops, the open Kafka transaction finishes, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["zoho-desk-cdc"]
CMD ["run", "--config", "/etc/zoho-desk-cdc/config.toml"]
