# Pisek's container image, for registries and CI elsewhere (amd64, arm64):
#   docker buildx build --platform linux/amd64,linux/arm64 -t <registry>/pisek:0.1.0 .
# The same image is built offline from already built binaries by
# scripts/build-image (no Docker needed), and that one is what the tests run.
# It holds pisek-agent, pisekctl, pisek-collector, and pisek-cni in
# /usr/lib/cni for the DaemonSet's init container to install on the host.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p pisek-agent -p pisek-collector -p pisek-cni

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/pisek-agent /src/target/release/pisekctl \
     /src/target/release/pisek-collector /usr/bin/
COPY --from=build /src/target/release/pisek-cni /usr/lib/cni/pisek-cni
ENTRYPOINT ["/usr/bin/pisek-agent"]
CMD ["--config", "/etc/pisek/agent.toml"]
