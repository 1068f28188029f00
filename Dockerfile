# syntax=docker/dockerfile:1
#
# Tally's container image: one static-enough binary on a distroless base.
#
#   docker build -t tally:0.1.0 .
#   docker run --rm -e DATABASE_URL=postgres://... -e TALLY_GRPC_ADDR=0.0.0.0:50051 -p 50051:50051 tally:0.1.0
#   docker run --rm -e DATABASE_URL=postgres://... tally:0.1.0 keys create --merchant acme --scopes read
#
# The image runs `tally serve` by default; `tally migrate` and `tally worker`
# are the same image with other arguments (the Helm chart does exactly that).
# It needs DATABASE_URL: the embedded PostgreSQL that `serve` starts on a
# developer's machine is not in the image.

ARG RUST_VERSION=1.95
# Keep in step with the runtime's debian12 (bookworm): same glibc.
ARG DEBIAN_RELEASE=bookworm

# ---- build: the release binary, from the locked dependency graph ----------
# The full (not slim) image: it has pkg-config and libssl-dev should a
# dependency ever link OpenSSL; its size never reaches the runtime image.
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Only what the build reads (.dockerignore keeps the rest out of the context).
# build.rs compiles proto/ with protox (pure Rust): no protoc needed.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY migrations ./migrations
COPY src ./src
COPY benches ./benches
# Cache mounts keep the registry and target/ between builds; the binary is
# copied out of target/ in the same step because the mount is not in the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tally \
    && install -D -m 0755 target/release/tally /out/tally

# ---- runtime: glibc, libgcc, CA certificates and tzdata; no shell ---------
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="tally" \
      org.opencontainers.image.description="Reconciles retail money flows over gRPC" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/tally /usr/local/bin/tally
# distroless's nonroot user, by number so that runAsNonRoot can verify it.
USER 65532:65532
# Reachable from outside the container, so API keys are required (docs/security.md):
# create one with `tally keys create`; TALLY_AUTH=none needs TALLY_INSECURE_NO_AUTH=true.
ENV TALLY_GRPC_ADDR=0.0.0.0:50051 \
    TALLY_AUTH=keys \
    TALLY_METRICS_ADDR=0.0.0.0:9464 \
    TALLY_LOG_FORMAT=json
# gRPC (and grpc.health.v1 for probes), Prometheus /metrics.
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/tally"]
CMD ["serve"]
