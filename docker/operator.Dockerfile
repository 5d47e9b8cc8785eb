# syntax=docker/dockerfile:1.7
# outband-operator: multi-stage build, distroless non-root runtime.
# Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t outband-operator .

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p outband-operator --bin outband-operator \
 && install -D -m 0755 target/release/outband-operator /out/outband-operator

# glibc, CA certificates and a nonroot user (65532), nothing else: no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/outband-operator /usr/local/bin/outband-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/outband-operator"]
