# tests/images/node.Dockerfile: bottle-test-node, the look-alike of
# node:22-bookworm-slim (images/agent/Dockerfile's NODE_IMAGE) made from
# Debian packages alone: Node.js and npm from bookworm, the `node` user
# (uid 1000, home /home/node) the official image has, CMD node.
# Debian's Node.js is older than the 22 Claude Code's package asks for; npm
# only warns, and Claude Code runs as its native binary.
ARG DEBIAN_IMAGE=bottle-test-debian:latest
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nodejs npm \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --home-dir /home/node --uid 1000 --user-group --shell /bin/bash node
ENV LANG=C.UTF-8
CMD ["node"]
