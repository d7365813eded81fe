# tests/images/tools.Dockerfile: bottle-test-tools, what the tests run beside
# a bottle: the HTTPS upstream stand-ins (python3), an sshd with git for
# git-gate's upstream, and the smolvm stand-in's machines (socat, curl,
# procps, util-linux; a `node` user, uid 1000).
ARG DEBIAN_IMAGE=bottle-test-debian:latest
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl git util-linux openssh-client \
      openssh-server procps python3 socat \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --home-dir /home/node --uid 1000 --user-group --shell /bin/bash node
ENV LANG=C.UTF-8
CMD ["sleep", "infinity"]
