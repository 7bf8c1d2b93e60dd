# Build the toggled binary and ship it on a small runtime image with the example flags.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin toggled

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 toggled
COPY --from=build /src/target/release/toggled /usr/local/bin/toggled
COPY flags /flags
USER toggled
# Until the server lands, the image validates the flag file it is given.
ENTRYPOINT ["toggled"]
CMD ["validate", "/flags/feature-flags.yaml"]
