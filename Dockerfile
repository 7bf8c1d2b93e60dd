# Build the toggled binary and ship it on a small runtime image with the example flags.
# Base images are pinned by version; `tests/it/packaging.rs` checks that every file the build
# reads is copied into the build stage.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY ui ./ui
COPY benches ./benches
COPY examples ./examples
RUN cargo build --profile production --locked --bin toggled

FROM debian:12.12-slim
# A trust store for HTTPS webhooks, notifications and Prometheus URLs.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 toggled && mkdir /data && chown toggled /data
COPY --from=build /src/target/production/toggled /usr/local/bin/toggled
COPY flags /flags
USER toggled
ENV TOGGLED_FLAGS=/flags/feature-flags.yaml \
    TOGGLED_LISTEN=0.0.0.0:8080 \
    TOGGLED_DATABASE=sqlite:///data/toggled.db \
    TOGGLED_LOG_FORMAT=json
EXPOSE 8080
VOLUME /data
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 CMD ["toggled", "probe"]
ENTRYPOINT ["toggled"]
CMD ["serve"]
