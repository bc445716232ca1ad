# Prism's container image: `docker build -t ghcr.io/prism-dev/prism:0.1.0 .`
#
# Build stage: the release binary from the locked dependencies.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin prism \
 && strip target/release/prism

# Run stage: Debian slim with what the controller shells out to (git, ssh for SSH
# repositories) and CA certificates; non-root, and happy on a read-only root
# filesystem: it writes only $HOME (/tmp) and its cache (/var/cache/prism), which
# deploy/deployment.yaml mounts as emptyDirs.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/cache/prism \
 && chown 65532:65532 /var/cache/prism
COPY --from=build /src/target/release/prism /usr/local/bin/prism
ENV HOME=/tmp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["prism"]
