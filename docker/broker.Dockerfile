# syntax=docker/dockerfile:1.7
# strata-broker image, as run by strata-operator. Build from the repository root:
#   docker build -f docker/broker.Dockerfile -t strata/broker:0.1.0 .
# The operator's contract (operator/src/broker_contract.rs) needs /bin/sh (start and tune
# scripts), `strata-broker` on PATH and uid 10001. The `strata` CLI ships beside it (kubectl exec ... strata).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p strata-broker -p strata-cli \
 && install -D target/release/strata-broker /out/strata-broker \
 && install -D target/release/strata /out/strata

FROM debian:bookworm-slim
RUN groupadd --gid 10001 strata \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/strata --shell /usr/sbin/nologin strata \
 && install -d -o 10001 -g 10001 /var/lib/strata /var/run/strata /etc/strata
COPY --from=build /out/strata-broker /out/strata /usr/local/bin/
USER 10001:10001
EXPOSE 9092 9644
ENTRYPOINT ["/usr/local/bin/strata-broker"]
