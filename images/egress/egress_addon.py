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

from mitmproxy import ctx, http

import egress_core as core

DEFAULT_ROUTES = "/etc/bottle/egress/routes.json"
MARK = "bottle-egress"


def _text_response(status, body, content_type="text/plain; charset=utf-8"):
    if not body.endswith("\n"):
        body += "\n"
    return http.Response.make(status, body.encode("utf-8"), {"Content-Type": content_type})


class Egress:
    def __init__(self):
        self.path = os.environ.get("EGRESS_ROUTES") or DEFAULT_ROUTES
        self.table = core.RouteTable([])  # blocks everything until loaded

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

    def requestheaders(self, flow: http.HTTPFlow):
        self._settle(flow)

    def request(self, flow: http.HTTPFlow):
        if flow.response is None and flow.metadata.get(MARK) is None:
            self._settle(flow)

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
