# tests/images/mitmproxy.Dockerfile: bottle-test-mitmproxy, the look-alike
# of mitmproxy/mitmproxy:10.4.2 (images/sidecars/Dockerfile's
# MITMPROXY_IMAGE) made from Debian packages alone: Debian's mitmproxy (8.1)
# and python3, the `mitmproxy` user, the official image's VOLUME, EXPOSE
# and CMD. python3-yaml is for the pipelock stand-in, which reads its YAML
# config (the real pipelock is one static binary).
ARG DEBIAN_IMAGE=bottle-test-debian:latest
FROM ${DEBIAN_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-yaml mitmproxy \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --user-group mitmproxy
ENV LANG=C.UTF-8
VOLUME /home/mitmproxy/.mitmproxy
EXPOSE 8080 8081
CMD ["mitmproxy"]
