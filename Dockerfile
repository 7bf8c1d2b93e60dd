# Build the toggled binary and ship it on a small runtime image with the example flags.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
COPY examples ./examples
RUN cargo build --profile production --locked --bin toggled

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 toggled && mkdir /data && chown toggled /data
COPY --from=build /src/target/production/toggled /usr/local/bin/toggled
COPY flags /flags
USER toggled
ENV TOGGLED_FLAGS=/flags/feature-flags.yaml \
    TOGGLED_LISTEN=0.0.0.0:8080 \
    TOGGLED_DATABASE=sqlite:///data/toggled.db \
    TOGGLED_LOG_FORMAT=json
EXPOSE 8080
VOLUME /data
ENTRYPOINT ["toggled"]
CMD ["serve"]
