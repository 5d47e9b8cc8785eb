# syntax=docker/dockerfile:1.7
# outband-sidecar: multi-stage build, distroless non-root runtime.
# Build from the repository root:
#   docker build -f docker/sidecar.Dockerfile -t outband-sidecar .

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p outband-sidecar --bin outband-sidecar \
 && install -D -m 0755 target/release/outband-sidecar /out/outband-sidecar

# glibc, CA certificates and a nonroot user (65532), nothing else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/outband-sidecar /usr/local/bin/outband-sidecar
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/outband-sidecar"]
