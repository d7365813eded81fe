"""supervise: the bundle's MCP server through which the agent asks a human
for capabilities (Python standard library only).

A minimal MCP server over streamable HTTP: every JSON-RPC message is POSTed
to / and answered with one application/json body (no SSE stream is ever
opened; GET / is 405). It offers one tool, request_capability, which
writes one JSON file per request into the queue directory for a human to
review and tells the agent it was queued, not granted.

Environment: SUPERVISE_PORT (9100), SUPERVISE_QUEUE_DIR
(/var/lib/bottle/supervise, bind-mounted from the launch's state dir),
SUPERVISE_BOTTLE_SLUG (the launch's slug, recorded in each request).

Queue files are written to a hidden temporary name in the same directory
and renamed into place, so a reader never sees a half-written request.
"""

import datetime
import json
import os
import re
import signal
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVER_NAME = "bottle-supervise"
SERVER_VERSION = "1"
PROTOCOL_VERSIONS = ("2025-06-18", "2025-03-26", "2024-11-05")
MAX_BODY = 1 << 20
MAX_CAPABILITY = 200
MAX_REASON = 4000

TOOL = {
    "name": "request_capability",
    "description": (
        "Ask the human supervising this sandbox for a capability you lack (network access "
        "to a host, a credential, a tool, a permission). The request is queued for review; "
        "it is not granted by calling this. Say exactly what you need and why."
    ),
    "inputSchema": {
        "type": "object",
        "properties": {
            "capability": {"type": "string", "description": "What you need, specifically."},
            "reason": {"type": "string", "description": "Why you need it for the task at hand."},
        },
        "required": ["capability", "reason"],
        "additionalProperties": False,
    },
}

LOCAL_ORIGIN = re.compile(r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]+)?$")


class RpcError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def log(msg):
    print(f"supervise: {msg}", file=sys.stderr, flush=True)


class Queue:
    def __init__(self, directory, slug):
        self.dir = directory
        self.slug = slug

    def add(self, capability, reason):
        now = datetime.datetime.now(datetime.timezone.utc)
        rid = uuid.uuid4().hex
        entry = {
            "id": rid,
            "time": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "slug": self.slug,
            "capability": capability,
            "reason": reason,
            "status": "pending",
        }
        name = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{rid}.json"
        tmp = os.path.join(self.dir, f".{name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, os.path.join(self.dir, name))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return entry


def tool_text(text, is_error=False):
    return {"content": [{"type": "text", "text": text}], "isError": is_error}


def call_request_capability(queue, args):
    if not isinstance(args, dict):
        return tool_text("request_capability needs an object with capability and reason.", True)
    unknown = sorted(set(args) - {"capability", "reason"})
    cap, reason = args.get("capability"), args.get("reason")
    problems = []
    if unknown:
        problems.append(f"unknown argument {unknown[0]!r}")
    if not isinstance(cap, str) or not cap.strip():
        problems.append("capability must be a non-empty string")
    elif len(cap) > MAX_CAPABILITY:
        problems.append(f"capability is longer than {MAX_CAPABILITY} characters")
    if not isinstance(reason, str) or not reason.strip():
        problems.append("reason must be a non-empty string")
    elif len(reason) > MAX_REASON:
        problems.append(f"reason is longer than {MAX_REASON} characters")
    if problems:
        return tool_text("Not queued: " + "; ".join(problems) + ".", True)
    try:
        entry = queue.add(cap.strip(), reason.strip())
    except OSError as e:
        log(f"cannot write to the queue {queue.dir}: {e.strerror}")
        return tool_text("Not queued: the request queue cannot be written; tell the human.", True)
    log(f"queued request {entry['id']} for capability {entry['capability'][:80]!r}")
    return tool_text(
        f"Queued request {entry['id']} for a human to review: capability "
        f"{entry['capability']!r}. Nothing is granted yet; carry on without it or wait "
        "for the human to tell you it is available."
    )


def handle_message(queue, msg):
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
                "instructions": "Use request_capability to ask the human for anything this "
                "sandbox does not let you do.",
            }
        elif method == "ping":
            result = {}
        elif method == "tools/list":
            result = {"tools": [TOOL]}
        elif method == "tools/call":
            if not isinstance(params, dict):
                raise RpcError(-32602, "params must be an object")
            if params.get("name") != TOOL["name"]:
                raise RpcError(-32602, f"Unknown tool: {params.get('name')!r}")
            result = call_request_capability(queue, params.get("arguments") or {})
        else:
            raise RpcError(-32601, f"Method not found: {method}")
    except RpcError as e:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": e.code, "message": e.message}}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


class Handler(BaseHTTPRequestHandler):
    server_version = "bottle-supervise"
    protocol_version = "HTTP/1.1"
    queue = None  # set by main

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
            answers = [a for a in (handle_message(self.queue, m) for m in msg) if a is not None]
            return self._send(200, answers) if answers else self._send(202)
        answer = handle_message(self.queue, msg)
        if answer is None:
            return self._send(202)
        self._send(200, answer)

    def _not_allowed(self):
        self._send(405, None, {"Allow": "POST"})

    do_GET = do_DELETE = do_PUT = _not_allowed

    def log_message(self, fmt, *args):
        pass  # one line per queued request is enough; see call_request_capability


def main():
    port = int(os.environ.get("SUPERVISE_PORT") or 9100)
    qdir = os.environ.get("SUPERVISE_QUEUE_DIR") or "/var/lib/bottle/supervise"
    slug = os.environ.get("SUPERVISE_BOTTLE_SLUG") or ""
    if not slug:
        log("SUPERVISE_BOTTLE_SLUG is not set; requests will carry an empty slug")
    os.makedirs(qdir, exist_ok=True)
    Handler.queue = Queue(qdir, slug)
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log(f"MCP server on 0.0.0.0:{port}, queue {qdir}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
