# Outrider container image: build with the Rust toolchain, run on a slim base as non-root.
FROM rust:1-bookworm AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --profile dist --locked && cp target/dist/outrider /outrider

FROM debian:bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home outrider
COPY --from=build /outrider /usr/local/bin/outrider
COPY conf/outrider.toml /etc/outrider/outrider.toml
ENV OUTRIDER_CONFIG=/etc/outrider/outrider.toml
USER 10001
# Data plane and admin plane (the admin port binds 127.0.0.1 unless the conf says otherwise).
EXPOSE 8080 9901
HEALTHCHECK --interval=10s --timeout=2s CMD curl -fsS http://127.0.0.1:9901/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/outrider"]
