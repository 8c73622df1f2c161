# syntax=docker/dockerfile:1.7
# strata-operator image. Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t strata/operator:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p strata-operator \
 && install -D target/release/strata-operator /out/strata-operator

# Distroless: libc + CA certificates, no shell or package manager; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/strata-operator /usr/local/bin/strata-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/strata-operator"]
CMD ["run"]
