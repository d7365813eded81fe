"""supervise: the bundle's MCP server through which the agent asks a human
for what the sandbox does not give it (Python standard library only).

A minimal MCP server over streamable HTTP: every JSON-RPC message is POSTed
to / and answered with one application/json body (no SSE stream is ever
opened; GET / is 405). Tools:

- request_egress {host, port?, reason, wait_seconds?}: network access to a
  host the bottle's egress does not allow;
- request_capability {capability, reason, wait_seconds?}: anything else;
- list_egress {}: the bottle's current egress routes (no token values; the
  routes file never holds any).

A request is written to the queue directory as <id>.request.json (a hidden
temporary name renamed into place, so a reader never sees half a request)
and appended to the audit log as one line. The call then waits, bounded,
for <id>.decision.json, which `bottle supervise` on the host writes after
it has applied the decision (an approved host is already open when the
agent hears "approved"). Without a decision in time the answer is
"pending"; the request stays queued and the human's decision still applies.

Environment: SUPERVISE_PORT (9100), SUPERVISE_QUEUE_DIR
(/var/lib/bottle/supervise, bind-mounted from the launch's state dir),
SUPERVISE_AUDIT (the state dir's audit.jsonl, bind-mounted; empty: no
audit), SUPERVISE_ROUTES (egress's routes file), SUPERVISE_BOTTLE_SLUG,
SUPERVISE_WAIT_SECONDS (the longest a call waits, 180; a call may ask for
less with wait_seconds).
"""

import datetime
import json
import os
import re
import signal
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVER_NAME = "bottle-supervise"
SERVER_VERSION = "2"
PROTOCOL_VERSIONS = ("2025-06-18", "2025-03-26", "2024-11-05")
MAX_BODY = 1 << 20
MAX_CAPABILITY = 200
MAX_REASON = 2000
MAX_HOST = 253
POLL_SECONDS = 0.2
DEFAULT_WAIT = 180

HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

WAIT_PROPERTY = {
    "type": "integer", "minimum": 0,
    "description": "How long to wait for the human's answer, in seconds (default and maximum: the "
                   "server's limit). With 0 the request is queued and the call returns at once.",
}

TOOLS = [
    {
        "name": "request_egress",
        "description": (
            "Ask the human supervising this sandbox to let you reach a network host that is "
            "blocked now (answers 403 'blocked: domain not in allowlist'). The call waits for the "
            "human's decision and returns 'approved' (the host works from then on, without a "
            "restart), 'denied' (with the human's note), or 'pending' when nobody answered in "
            "time (the decision still applies when it comes). No credential is ever added."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "host": {"type": "string", "description": "The host name, e.g. files.pythonhosted.org."},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535,
                         "description": "The port, when not 443."},
                "reason": {"type": "string", "description": "Why the task at hand needs it."},
                "wait_seconds": WAIT_PROPERTY,
            },
            "required": ["host", "reason"],
            "additionalProperties": False,
        },
    },
    {
        "name": "request_capability",
        "description": (
            "Ask the human supervising this sandbox for something else you lack (a credential, "
            "a tool, a permission). The call waits for the decision and returns 'approved' or "
            "'denied' with the human's note, or 'pending' on timeout. Say exactly what you need "
            "and why; for network access use request_egress."
        ),
        "inputSchema": {
            "type": "object",
            "properties": {
                "capability": {"type": "string", "description": "What you need, specifically."},
                "reason": {"type": "string", "description": "Why the task at hand needs it."},
                "wait_seconds": WAIT_PROPERTY,
            },
            "required": ["capability", "reason"],
            "additionalProperties": False,
        },
    },
    {
        "name": "list_egress",
        "description": "The hosts this sandbox's egress proxy routes now (including approved ones).",
        "inputSchema": {"type": "object", "properties": {}, "additionalProperties": False},
    },
]
TOOL_NAMES = {t["name"] for t in TOOLS}

LOCAL_ORIGIN = re.compile(r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]+)?$")


class RpcError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def log(msg):
    print(f"supervise: {msg}", file=sys.stderr, flush=True)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def host_problem(host):
    """None when host is a plausible DNS name, else what is wrong with it."""
    if len(host) > MAX_HOST:
        return f"host is longer than {MAX_HOST} characters"
    labels = host.split(".")
    if len(labels) < 2:
        return f"host {host!r} is not a fully qualified name (want e.g. example.com)"
    for label in labels:
        if not HOST_LABEL.match(label):
            return f"host {host!r} is not a valid DNS name (letters, digits, '-' and '.' only)"
    if labels[-1].isdigit():
        return f"host {host!r} is an IP address; ask for a host name"
    return None


class Config:
    def __init__(self, queue_dir, audit, routes, slug, max_wait):
        self.queue_dir = queue_dir
        self.audit = audit
        self.routes = routes
        self.slug = slug
        self.max_wait = max_wait


def append_audit(cfg, record):
    """One line, one write(2) with O_APPEND: lines of concurrent writers
    (other calls, the host's `bottle supervise`) never interleave."""
    if not cfg.audit:
        return
    data = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(cfg.audit, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        if os.write(fd, data) != len(data):
            raise OSError("short write to the audit log")
    finally:
        os.close(fd)


def write_request(cfg, entry):
    name = f"{entry['id']}.request.json"
    tmp = os.path.join(cfg.queue_dir, f".{name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entry, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(cfg.queue_dir, name))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_decision(cfg, rid):
    path = os.path.join(cfg.queue_dir, f"{rid}.decision.json")
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log(f"cannot read the decision for {rid}: {e}")
        return None
    if not isinstance(d, dict) or d.get("decision") not in ("approved", "denied"):
        log(f"ignoring a malformed decision for {rid}")
        return None
    return d


def tool_text(text, is_error=False, structured=None):
    out = {"content": [{"type": "text", "text": text}], "isError": is_error}
    if structured is not None:
        out["structuredContent"] = structured
    return out


def check_args(args, allowed):
    if not isinstance(args, dict):
        return ["arguments must be an object"]
    unknown = sorted(set(args) - allowed)
    return [f"unknown argument {unknown[0]!r}"] if unknown else []


def check_text(problems, args, key, limit):
    v = args.get(key)
    if not isinstance(v, str) or not v.strip():
        problems.append(f"{key} must be a non-empty string")
    elif len(v) > limit:
        problems.append(f"{key} is longer than {limit} characters")
    elif any(ord(c) < 32 and c not in "\n\t" for c in v):
        problems.append(f"{key} contains control characters")


def check_wait(problems, args, cfg):
    w = args.get("wait_seconds", cfg.max_wait)
    if isinstance(w, bool) or not isinstance(w, int) or w < 0:
        problems.append("wait_seconds must be a whole number of seconds, 0 or more")
        return 0
    return min(w, cfg.max_wait)


def validate_egress(args, cfg):
    problems = check_args(args, {"host", "port", "reason", "wait_seconds"})
    if problems:
        return problems, None, 0
    host = args.get("host")
    if not isinstance(host, str) or not host.strip():
        problems.append("host must be a non-empty string")
    else:
        host = host.strip().lower().rstrip(".")
        p = host_problem(host)
        if p:
            problems.append(p)
    port = args.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        problems.append("port must be a number from 1 to 65535")
    check_text(problems, args, "reason", MAX_REASON)
    wait = check_wait(problems, args, cfg)
    what = {"host": host}
    if port is not None:
        what["port"] = port
    return problems, what, wait


def validate_capability(args, cfg):
    problems = check_args(args, {"capability", "reason", "wait_seconds"})
    if problems:
        return problems, None, 0
    check_text(problems, args, "capability", MAX_CAPABILITY)
    check_text(problems, args, "reason", MAX_REASON)
    wait = check_wait(problems, args, cfg)
    if problems:
        return problems, None, 0
    return problems, {"capability": args["capability"].strip()}, wait


def call_request(cfg, tool, args):
    validate = validate_egress if tool == "request_egress" else validate_capability
    problems, what, wait = validate(args, cfg)
    if problems:
        return tool_text("Not queued: " + "; ".join(problems) + ".", True)
    entry = {
        "id": uuid.uuid4().hex[:8],
        "time": utc_now(),
        "slug": cfg.slug,
        "tool": tool,
        "input": what,
        "reason": args["reason"].strip(),
    }
    try:
        write_request(cfg, entry)
        append_audit(cfg, {"event": "request", **entry})
    except OSError as e:
        log(f"cannot queue a request in {cfg.queue_dir}: {e.strerror or e}")
        return tool_text("Not queued: the request queue cannot be written; tell the human.", True)
    rid = entry["id"]
    log(f"request {rid}: {tool} {json.dumps(what)}")
    deadline = time.monotonic() + wait
    while True:
        d = read_decision(cfg, rid)
        if d is not None:
            note = d.get("note") or ""
            log(f"request {rid}: {d['decision']}")
            text = f"{d['decision']} (request {rid})"
            if d["decision"] == "approved" and tool == "request_egress":
                # the human may have approved an edited host
                approved = d.get("input") if isinstance(d.get("input"), dict) else what
                text += f": {approved.get('host', what['host'])} is open now"
            if note:
                text += f". Note from the human: {note}"
            return tool_text(text, False, {"status": d["decision"], "id": rid, "note": note})
        if time.monotonic() >= deadline:
            break
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    log(f"request {rid}: no decision within {wait} s")
    return tool_text(
        f"pending (request {rid}): no decision within {wait} s. The request stays queued and the "
        "human's decision applies when it comes; carry on without it, or ask again later.",
        False, {"status": "pending", "id": rid, "note": ""})


def call_list_egress(cfg, args):
    problems = check_args(args, set())
    if problems:
        return tool_text("list_egress: " + "; ".join(problems) + ".", True)
    try:
        with open(cfg.routes, encoding="utf-8") as f:
            table = json.load(f)
        routes = table["routes"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        log(f"cannot read the routes file {cfg.routes}: {e}")
        return tool_text("The egress routes cannot be read now; tell the human.", True)
    out = []
    for r in routes if isinstance(routes, list) else []:
        if isinstance(r, dict) and isinstance(r.get("host"), str):
            out.append({"host": r["host"], "authenticated": bool(r.get("auth_scheme")),
                        "restricted": bool(r.get("matches"))})
    lines = [f"{r['host']}{' (credential injected)' if r['authenticated'] else ''}" for r in out]
    text = "Egress routes:\n" + "\n".join(lines) if lines else "No egress routes."
    return tool_text(text, False, {"routes": out})


def call_tool(cfg, params):
    name = params.get("name")
    if name not in TOOL_NAMES:
        raise RpcError(-32602, f"Unknown tool: {name!r}")
    args = params.get("arguments")
    if args is None:
        args = {}
    if name == "list_egress":
        return call_list_egress(cfg, args)
    return call_request(cfg, name, args)


def handle_message(cfg, msg):
    """One JSON-RPC message -> a response object, or None for a notification."""
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0" or not isinstance(msg.get("method"), str):
        rid = msg.get("id") if isinstance(msg, dict) else None
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32600, "message": "Invalid Request"}}
    method = msg["method"]
    if "id" not in msg:
        return None  # notifications (notifications/initialized, cancelled, ...) need no answer
    rid, params = msg["id"], msg.get("params") or {}
    try:
        if method == "initialize":
            asked = params.get("protocolVersion") if isinstance(params, dict) else None
            result = {
                "protocolVersion": asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": SERVER_NAME, "version": SERVER_VERSION},
                "instructions": "When the sandbox blocks a host you need, call request_egress; for "
                "anything else it does not let you do, request_capability. A human answers.",
            }
        elif method == "ping":
            result = {}
        elif method == "tools/list":
            result = {"tools": TOOLS}
        elif method == "tools/call":
            if not isinstance(params, dict):
                raise RpcError(-32602, "params must be an object")
            result = call_tool(cfg, params)
        else:
            raise RpcError(-32601, f"Method not found: {method}")
    except RpcError as e:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": e.code, "message": e.message}}
    except Exception as e:  # noqa: BLE001 - one bad message must not drop the connection
        log(f"internal error on {method}: {type(e).__name__}: {e}")
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": "Internal error"}}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


class Handler(BaseHTTPRequestHandler):
    server_version = "bottle-supervise"
    protocol_version = "HTTP/1.1"
    cfg = None  # set by main

    def _send(self, status, body=None, extra=None):
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _rpc_error(self, status, code, message):
        self._send(status, {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}})

    def do_POST(self):
        origin = self.headers.get("Origin")
        if origin is not None and not LOCAL_ORIGIN.match(origin):
            return self._rpc_error(403, -32600, "Origin not allowed")
        if self.path.split("?", 1)[0] != "/":
            return self._rpc_error(404, -32600, "the MCP endpoint is /")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            return self._rpc_error(411, -32600, "Content-Length required")
        if length < 0 or length > MAX_BODY:
            return self._rpc_error(413, -32600, "request too large")
        raw = self.rfile.read(length)
        try:
            msg = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return self._rpc_error(400, -32700, "Parse error")
        if isinstance(msg, list):
            if not msg:
                return self._rpc_error(400, -32600, "Invalid Request")
            answers = [a for a in (handle_message(self.cfg, m) for m in msg) if a is not None]
            return self._send(200, answers) if answers else self._send(202)
        answer = handle_message(self.cfg, msg)
        if answer is None:
            return self._send(202)
        self._send(200, answer)

    def _not_allowed(self):
        self._send(405, None, {"Allow": "POST"})

    do_GET = do_DELETE = do_PUT = _not_allowed

    def log_message(self, fmt, *args):
        pass  # one line per request and decision is enough; see call_request


def main():
    port = int(os.environ.get("SUPERVISE_PORT") or 9100)
    qdir = os.environ.get("SUPERVISE_QUEUE_DIR") or "/var/lib/bottle/supervise"
    slug = os.environ.get("SUPERVISE_BOTTLE_SLUG") or ""
    audit = os.environ.get("SUPERVISE_AUDIT", "")
    routes = os.environ.get("SUPERVISE_ROUTES") or "/etc/bottle/egress/routes.json"
    try:
        max_wait = int(os.environ.get("SUPERVISE_WAIT_SECONDS") or DEFAULT_WAIT)
    except ValueError:
        max_wait = -1
    if max_wait < 0:
        log("SUPERVISE_WAIT_SECONDS must be a whole number of seconds")
        sys.exit(2)
    if not slug:
        log("SUPERVISE_BOTTLE_SLUG is not set; requests will carry an empty slug")
    os.makedirs(qdir, exist_ok=True)
    Handler.cfg = Config(qdir, audit, routes, slug, max_wait)
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log(f"MCP server on 0.0.0.0:{port}, queue {qdir}, waits up to {max_wait} s")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
