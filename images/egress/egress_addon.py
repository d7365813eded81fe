"""egress_addon: the mitmproxy hooks of the egress proxy (mitmproxy 8).

All policy lives in egress_core; this file only moves data between
mitmproxy flows and it:

- requestheaders: decide, then either answer 403 "blocked: ..." or drop the
  inbound Authorization and set the injected one. Headers must change here,
  not in `request`, because a streamed body sends the headers upstream
  before `request` runs.
- request: a second look for flows that requestheaders did not settle.
- http_connect: refuse a CONNECT to a host without a route with 403 before
  any TLS or upstream connection happens.
- http://_egress.local/allowlist: the route table as JSON, without values.
- upstream refusals: when pipelock (the upstream proxy) refuses the CONNECT
  egress makes for a tunnel, mitmproxy keeps only its status line and
  answers the agent 502. So before mitmproxy opens an upstream tunnel, the
  addon asks pipelock itself (a CONNECT it closes at once; at most once per
  host and port per minute while pipelock accepts) and answers a refusal
  with pipelock's status and reason: `403 blocked: <reason>` (or 429).
- SIGHUP: reload the routes file, keeping the old table when the new one
  does not load. A missing or broken file at startup is an error, which
  makes mitmdump exit rather than run without a table.

Any exception while deciding blocks the request: mitmproxy would otherwise
log the error and forward the flow untouched.
"""

import asyncio
import json
import os
import signal
import time
import urllib.parse

from mitmproxy import ctx, http

import egress_core as core

DEFAULT_ROUTES = "/etc/bottle/egress/routes.json"
MARK = "bottle-egress"
ALLOW_TTL = 60.0
PROBE_TIMEOUT = 5.0
PROBE_MAX_HEAD = 8192
PROBE_MAX_BODY = 4096


def _text_response(status, body, content_type="text/plain; charset=utf-8"):
    if not body.endswith("\n"):
        body += "\n"
    return http.Response.make(status, body.encode("utf-8"), {"Content-Type": content_type})


class Egress:
    def __init__(self):
        self.path = os.environ.get("EGRESS_ROUTES") or DEFAULT_ROUTES
        self.table = core.RouteTable([])  # blocks everything until loaded
        # "host:port" -> monotonic time until which pipelock is taken to
        # accept a CONNECT there without asking again.
        self.tunnels_ok = {}

    # -- routes -----------------------------------------------------------

    def load(self, loader):
        try:
            self.table = core.load_routes(self.path)
        except (OSError, core.RoutesError) as e:
            ctx.log.error(f"egress: cannot load routes from {self.path}: {e}")
            return
        ctx.log.info(f"egress: loaded {len(self.table)} routes from {self.path}")

    def running(self):
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
        except (RuntimeError, NotImplementedError, ValueError) as e:
            ctx.log.warn(f"egress: SIGHUP reload unavailable: {e}")

    def reload(self):
        try:
            table = core.load_routes(self.path)
        except (OSError, core.RoutesError) as e:
            ctx.log.warn(
                f"egress: SIGHUP: kept the previous table ({len(self.table)} routes); "
                f"{self.path} did not load: {e}"
            )
            return
        self.table = table
        ctx.log.info(f"egress: SIGHUP: reloaded {len(table)} routes from {self.path}")

    # -- hooks ------------------------------------------------------------

    def http_connect(self, flow: http.HTTPFlow):
        try:
            d = core.decide_connect(self.table, flow.request.host)
        except Exception as e:  # fail closed
            ctx.log.error(f"egress: internal error on CONNECT: {type(e).__name__}: {e}")
            d = core.block("internal error in egress")
        if not d.allowed:
            self._refuse(flow, d, "CONNECT", "")

    async def requestheaders(self, flow: http.HTTPFlow):
        self._settle(flow)
        await self._check_upstream_tunnel(flow)

    def request(self, flow: http.HTTPFlow):
        if flow.response is None and flow.metadata.get(MARK) is None:
            self._settle(flow)

    def error(self, flow: http.HTTPFlow):
        # A refusal that came after the last probe (pipelock's rate limit):
        # probe again on the next request to that host.
        if flow.error and core.refused_status(flow.error.msg) is not None:
            self.tunnels_ok.pop(self._tunnel_key(flow.request), None)

    # -- internals --------------------------------------------------------

    def _settle(self, flow):
        req = flow.request
        try:
            if core.normalize_host(req.host) == core.CONTROL_HOST:
                flow.metadata[MARK] = "control"
                flow.response = self._control(req)
                return
            d = core.decide(self.table, req.method, req.host, req.path, req.headers, os.environ)
            if not d.allowed:
                self._refuse(flow, d, req.method, req.path)
                return
            for name in d.remove_headers:
                if name in req.headers:
                    del req.headers[name]
            for name, value in d.set_headers.items():
                req.headers[name] = value
            flow.metadata[MARK] = "allowed"
        except Exception as e:  # fail closed
            ctx.log.error(f"egress: internal error: {type(e).__name__}: {e}")
            self._refuse(flow, core.block("internal error in egress"), req.method, req.path)

    @staticmethod
    def _tunnel_key(req):
        return f"{core.normalize_host(req.host)}:{req.port}"

    async def _check_upstream_tunnel(self, flow):
        """For an allowed request inside a tunnel, makes sure pipelock will
        open the tunnel before mitmproxy asks it: mitmproxy keeps only the
        status line of a refused upstream CONNECT and answers 502, so the
        addon asks pipelock itself (once per host and port per ALLOW_TTL
        while it accepts) and answers a refusal with pipelock's own status
        and reason."""
        req = flow.request
        if (flow.response is not None or flow.metadata.get(MARK) != "allowed" or req.scheme != "https"
                or not os.environ.get("EGRESS_UPSTREAM_PROXY")):
            return
        key = self._tunnel_key(req)
        now = time.monotonic()
        # mitmproxy's own attempt for this tunnel (made during the agent's
        # TLS handshake) already failed: ask even if pipelock accepted the
        # host a moment ago.
        sc = flow.server_conn
        failed = sc.timestamp_start is not None and not sc.connected and sc.timestamp_tls_setup is None
        if not failed and self.tunnels_ok.get(key, 0) > now:
            return
        try:
            probed = await self._probe_upstream(req.host, req.port)
        except Exception as e:  # let mitmproxy try; it reports what fails
            ctx.log.warn(f"egress: could not ask pipelock about {key}: {type(e).__name__}: {e}")
            return
        if probed is None:
            return
        status, body = probed
        if 200 <= status < 300:
            self.tunnels_ok[key] = now + ALLOW_TTL
            return
        self.tunnels_ok.pop(key, None)
        self._refuse(flow, core.upstream_refusal(status, body, core.normalize_host(req.host)),
                     req.method, req.path)

    async def _probe_upstream(self, host, port):
        """CONNECTs to the upstream proxy for host:port and returns its
        (status, body); closes at once whatever it answered."""
        proxy = urllib.parse.urlsplit(os.environ.get("EGRESS_UPSTREAM_PROXY") or "")
        if not proxy.hostname or not proxy.port:
            return None
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(proxy.hostname, proxy.port), PROBE_TIMEOUT)
        try:
            writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode("ascii"))
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PROBE_TIMEOUT)
            if len(head) > PROBE_MAX_HEAD:
                return None
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            status = int(parts[1])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length" and value.strip().isdigit():
                    length = int(value.strip())
            body = b""
            if 300 <= status and length:
                body = await asyncio.wait_for(reader.readexactly(min(length, PROBE_MAX_BODY)), PROBE_TIMEOUT)
            return status, body.decode("utf-8", "replace")
        finally:
            writer.close()

    def _refuse(self, flow, d, method, path):
        flow.metadata[MARK] = "blocked"
        flow.response = _text_response(d.status, d.body)
        where = core.normalize_host(flow.request.host) + core.path_only(path) if path else flow.request.host
        ctx.log.info(f"egress: {method} {where}: {d.body}")

    def _control(self, req):
        if core.path_only(req.path) == "/allowlist" and req.method in ("GET", "HEAD"):
            body = json.dumps(core.describe(self.table, os.environ), indent=2)
            return _text_response(200, body, "application/json")
        return _text_response(404, "not found: this host only answers GET /allowlist")


addons = [Egress()]
