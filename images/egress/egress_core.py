"""egress_core: every decision the egress proxy makes, without mitmproxy.

The addon (egress_addon.py) is a thin layer of mitmproxy hooks around this
module so the policy can be tested with plain Python. It owns:

- the route table: loading and validating routes.json (schema in
  docs/bundle.md), strictly, so a file that drifted from the contract is
  refused rather than half understood;
- decide(): for one request, either a block (403, body starting
  "blocked: ") or an allow with the header changes to apply (the inbound
  Authorization is always dropped; an authenticated route sets
  "Authorization: <scheme> <slot value>", failing closed when the slot is
  empty or missing);
- decide_connect(): the same host check for a CONNECT, before any TLS;
- describe(): the table as the /allowlist endpoint shows it, without values;
- upstream_refusal(): what the agent receives when the upstream proxy
  (pipelock) refuses egress's CONNECT: pipelock's own status and reason as
  `blocked: <reason>` (docs/bundle.md lists pipelock's answers).

Token values only ever come from the env mapping passed in; they are never
logged, stored on a table or put in a block message.
"""

import json
import re
import urllib.parse

ROUTES_VERSION = 1
SCHEMES = ("Bearer", "token")
TOKEN_ENV_RE = re.compile(r"^EGRESS_TOKEN_[0-9]+$")
METHOD_RE = re.compile(r"^[A-Z]+$")
HOST_RE = re.compile(r"^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$|^[0-9a-f:.]+$")
PATH_TYPES = ("prefix", "exact")

ROUTE_KEYS = {"host", "auth_scheme", "token_env", "matches"}
MATCH_KEYS = {"paths", "methods"}
PATH_KEYS = {"type", "value"}
TOP_KEYS = {"version", "routes"}

# The pseudo host answering the allowlist endpoint; never forwarded.
CONTROL_HOST = "_egress.local"


class RoutesError(ValueError):
    """The routes file does not follow the contract; the message says where."""


class Route:
    __slots__ = ("host", "auth_scheme", "token_env", "matches")

    def __init__(self, host, auth_scheme, token_env, matches):
        self.host = host
        self.auth_scheme = auth_scheme
        self.token_env = token_env
        # Tuple of (paths, methods); each None (any) or a tuple.
        self.matches = matches

    def as_json(self):
        return {
            "host": self.host,
            "auth_scheme": self.auth_scheme,
            "token_env": self.token_env,
            "matches": [
                {
                    **({"paths": [{"type": t, "value": v} for t, v in paths]} if paths is not None else {}),
                    **({"methods": list(methods)} if methods is not None else {}),
                }
                for paths, methods in self.matches
            ],
        }


class RouteTable:
    """An immutable, validated route table keyed by normalized host."""

    def __init__(self, routes):
        self.routes = tuple(routes)
        self._by_host = {r.host: r for r in self.routes}

    def lookup(self, host):
        return self._by_host.get(normalize_host(host))

    def __len__(self):
        return len(self.routes)


def normalize_host(host):
    """Lower case, without a port, brackets or a trailing dot."""
    h = (host or "").strip().lower()
    if h.startswith("["):
        end = h.find("]")
        h = h[1:end] if end > 0 else h[1:]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def _fail(where, msg):
    raise RoutesError(f"{where}: {msg}")


def _check_keys(obj, allowed, where):
    if not isinstance(obj, dict):
        _fail(where, f"expected an object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        _fail(where, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _parse_match(m, where):
    _check_keys(m, MATCH_KEYS, where)
    paths = methods = None
    if "paths" in m and m["paths"] is not None:
        if not isinstance(m["paths"], list):
            _fail(f"{where}.paths", "expected a list")
        paths = []
        for j, p in enumerate(m["paths"]):
            pw = f"{where}.paths[{j}]"
            _check_keys(p, PATH_KEYS, pw)
            if p.get("type") not in PATH_TYPES:
                _fail(f"{pw}.type", f"must be one of {', '.join(PATH_TYPES)}")
            v = p.get("value")
            if not isinstance(v, str) or not v.startswith("/"):
                _fail(f"{pw}.value", "must be a string starting with '/'")
            paths.append((p["type"], v))
        paths = tuple(paths)
    if "methods" in m and m["methods"] is not None:
        if not isinstance(m["methods"], list):
            _fail(f"{where}.methods", "expected a list")
        for j, meth in enumerate(m["methods"]):
            if not isinstance(meth, str) or not METHOD_RE.match(meth):
                _fail(f"{where}.methods[{j}]", "must be an upper case HTTP method")
        methods = tuple(m["methods"])
    return paths, methods


def parse_routes(text):
    """Parses and validates routes.json text into a RouteTable."""
    try:
        doc = json.loads(text)
    except (ValueError, TypeError) as e:
        raise RoutesError(f"not valid JSON: {e}") from None
    _check_keys(doc, TOP_KEYS, "routes file")
    if doc.get("version") != ROUTES_VERSION:
        _fail("version", f"must be {ROUTES_VERSION}")
    raw = doc.get("routes")
    if not isinstance(raw, list):
        _fail("routes", "expected a list")
    routes, seen = [], set()
    for i, r in enumerate(raw):
        where = f"routes[{i}]"
        _check_keys(r, ROUTE_KEYS, where)
        host = r.get("host")
        if not isinstance(host, str) or not host.strip():
            _fail(f"{where}.host", "must be a non-empty string")
        norm = normalize_host(host)
        if not HOST_RE.match(norm):
            _fail(f"{where}.host", f"not a host name: {host!r}")
        if norm in seen:
            _fail(f"{where}.host", f"duplicate route for {norm}")
        seen.add(norm)
        scheme, slot = r.get("auth_scheme"), r.get("token_env")
        if scheme is not None and scheme not in SCHEMES:
            _fail(f"{where}.auth_scheme", f"must be one of {', '.join(SCHEMES)} or null")
        if slot is not None and (not isinstance(slot, str) or not TOKEN_ENV_RE.match(slot)):
            _fail(f"{where}.token_env", "must name a slot EGRESS_TOKEN_<n> or be null")
        if (scheme is None) != (slot is None):
            _fail(where, "auth_scheme and token_env must be set together")
        matches = r.get("matches")
        if matches is None:
            matches = []
        if not isinstance(matches, list):
            _fail(f"{where}.matches", "expected a list")
        parsed = tuple(_parse_match(m, f"{where}.matches[{j}]") for j, m in enumerate(matches))
        routes.append(Route(norm, scheme, slot, parsed))
    return RouteTable(routes)


def load_routes(path):
    """Reads and validates a routes file; RoutesError (or OSError) on failure."""
    with open(path, encoding="utf-8") as f:
        return parse_routes(f.read())


class Decision:
    """What to do with one request.

    allowed False: answer `status` with `body` and forward nothing.
    allowed True: drop every header in `remove_headers`, then set those in
    `set_headers`, then forward.
    """

    __slots__ = ("allowed", "status", "body", "remove_headers", "set_headers", "route")

    def __init__(self, allowed, status=200, body="", remove_headers=(), set_headers=None, route=None):
        self.allowed = allowed
        self.status = status
        self.body = body
        self.remove_headers = tuple(remove_headers)
        self.set_headers = dict(set_headers or {})
        self.route = route

    def __repr__(self):
        # Never shows header values: they may carry a token.
        if not self.allowed:
            return f"Decision(block {self.status} {self.body!r})"
        return f"Decision(allow, set {sorted(self.set_headers)})"


def block(message):
    return Decision(False, 403, "blocked: " + message)


def path_only(path):
    p = (path or "/").split("?", 1)[0].split("#", 1)[0]
    return p or "/"


def _has_dot_segment(path):
    for seg in path.split("/"):
        seg = urllib.parse.unquote(seg)
        if seg in (".", "..") or "/" in seg:
            return True
    return False


def _match_ok(route, method, path):
    if not route.matches:
        return True
    p = path_only(path)
    # A path a server could resolve elsewhere ("/repos/../admin") never
    # satisfies a path rule.
    tricky = _has_dot_segment(p)
    for paths, methods in route.matches:
        if methods is not None and method not in methods:
            continue
        if paths is not None:
            if tricky:
                continue
            if not any((t == "exact" and p == v) or (t == "prefix" and p.startswith(v)) for t, v in paths):
                continue
        return True
    return False


def _header(headers, name):
    """First value of a header from a mapping or (name, value) pairs."""
    items = headers.items() if hasattr(headers, "items") else headers or ()
    for k, v in items:
        if k.lower() == name.lower():
            return v
    return None


def decide_connect(table, host):
    """A CONNECT is allowed to any host that has a route."""
    if table.lookup(host) is None:
        return block(f"domain not in allowlist: {normalize_host(host)}")
    return Decision(True)


def decide(table, method, host, path, headers, env):
    """Decides one request. host is where the proxy will connect."""
    method = (method or "").upper()
    norm = normalize_host(host)
    route = table.lookup(norm)
    if route is None:
        return block(f"domain not in allowlist: {norm}")
    host_header = _header(headers, "host")
    if host_header is not None and normalize_host(host_header) != norm:
        return block(f"Host header does not match the destination {norm}")
    if not _match_ok(route, method, path):
        return block(f"request not allowed by route: {method} {path_only(path)} on {norm}")
    set_headers = {}
    if route.auth_scheme is not None:
        value = env.get(route.token_env) if env is not None else None
        value = (value or "").strip()
        if not value:
            return block(f"no credential for {norm}")
        if any(c in value for c in "\r\n\0"):
            return block(f"credential for {norm} is not a valid header value")
        set_headers["Authorization"] = f"{route.auth_scheme} {value}"
    return Decision(True, remove_headers=("Authorization",), set_headers=set_headers, route=route)


def describe(table, env=None):
    """The table for the /allowlist endpoint: names, never values."""
    out = []
    for r in table.routes:
        entry = r.as_json()
        if r.token_env is not None:
            entry["token_present"] = bool(env and (env.get(r.token_env) or "").strip())
        out.append(entry)
    return {"version": ROUTES_VERSION, "routes": out}


# mitmproxy's text for a CONNECT its upstream proxy answered with a non-2xx
# status (mitmproxy/proxy/layers/http/_upstream_proxy.py, 8.1.1 and 10.4.2):
# "Upstream proxy <addr> refused HTTP CONNECT request: <code> <reason>".
UPSTREAM_REFUSED_RE = re.compile(r"refused HTTP CONNECT request: (\d{3})\b")
# pipelock v2.3.0 prefixes a refused CONNECT's reason with "CONNECT blocked: "
# (internal/proxy/forward.go); the agent's request was not a CONNECT to it.
_PIPELOCK_CONNECT_PREFIX = "CONNECT blocked: "
MAX_REASON = 400


def refused_status(error_text):
    """The status the upstream proxy refused the CONNECT with, from
    mitmproxy's connection error text; None when it is another failure."""
    m = UPSTREAM_REFUSED_RE.search(error_text or "")
    return int(m.group(1)) if m else None


def upstream_refusal(status, body, host):
    """The answer for the agent when the upstream proxy refused a CONNECT to
    host with status and body (pipelock's text/plain reason). 403 and 429
    keep their status and become `blocked: <pipelock's reason>`; anything
    else (502 `tunnel dial failed`, 503 `too many active tunnels`) stays a
    gateway error naming pipelock's text."""
    reason = " ".join((body or "").split())[:MAX_REASON]
    if reason.startswith(_PIPELOCK_CONNECT_PREFIX):
        reason = reason[len(_PIPELOCK_CONNECT_PREFIX):]
    elif reason.startswith("blocked: "):
        reason = reason[len("blocked: "):]
    if status in (403, 429):
        return Decision(False, status, "blocked: " + (reason or f"refused by pipelock ({status})"))
    detail = f"{status} {reason}".strip() if reason else str(status)
    return Decision(False, 502 if status < 500 else status,
                    f"egress: pipelock could not open a tunnel to {host}: {detail}")

