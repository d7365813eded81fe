#!/usr/bin/python3
"""A stand-in for the Anthropic API, for tests only: enough of
api.anthropic.com for Claude Code to finish a turn with a fixed reply,
so a test can see what reached the API after the proxies.

    anthropic_api.py CERT KEY PORT RECORD [BIND]

Serves HTTPS (HTTP/1.1) with CERT and KEY on BIND (default 127.0.0.1):

- POST /v1/messages: a Message whose only content is one text block, the
  reply text (ANTHROPIC_STANDIN_REPLY, default `hi from the stand-in API`),
  for the requested model; with `"stream": true` the same as server-sent
  events (message_start, content_block_start, ping, content_block_delta
  text_delta..., content_block_stop, message_delta, message_stop).
- POST /v1/messages/count_tokens: {"input_tokens": N}, N estimated from
  the body's size.
- Checked in this order: neither `x-api-key` nor `Authorization` (or
  only empty ones): 401 authentication_error; an unknown method or path
  (the query string is ignored, Claude Code sends `?beta=true`): 404
  not_found_error; no `anthropic-version` header, a body that is not a
  JSON object, or one without a required field: 400
  invalid_request_error. Errors have the API's shape, {"type": "error",
  "error": {"type": ..., "message": ...}, "request_id": ...}; every
  answer carries a `request-id` header.
- GET /ready: 200 `ready`. The stand-in's own, not the API's: for tests
  to poll; not recorded and needs no credential.

Every other request is appended to RECORD as one JSON line: method,
path, status, the `authorization` and `x-api-key` values verbatim (null
when absent), anthropic-version, anthropic-beta, user-agent, model and
stream (null when the body has none). With ANTHROPIC_STANDIN_RECORD_BODY=1
the line also holds every header and the body (parsed JSON, or the text).
docs/anthropic-api.md cites the API documentation for each behaviour.
"""

import http.server
import json
import os
import secrets
import ssl
import sys
import threading

REPLY = os.environ.get("ANTHROPIC_STANDIN_REPLY") or "hi from the stand-in API"
RECORD_BODY = os.environ.get("ANTHROPIC_STANDIN_RECORD_BODY") == "1"
record_lock = threading.Lock()


def request_id():
    return "req_stand_in_" + secrets.token_hex(10)


def estimate_tokens(raw):
    return max(1, len(raw) // 4)


def reply_pieces(text):
    """The reply in a few text_delta pieces (words with their spaces)."""
    pieces, word = [], ""
    for ch in text:
        word += ch
        if ch == " ":
            pieces.append(word)
            word = ""
    if word:
        pieces.append(word)
    return pieces or [""]


class ApiError(Exception):
    def __init__(self, status, kind, message):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60

    def version_string(self):
        return "anthropic-api-stand-in"

    # -- plumbing ---------------------------------------------------------

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return raw
                raw += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self, status, body_json, raw):
        line = {
            "method": self.command,
            "path": self.path,
            "status": status,
            "authorization": self.headers.get("Authorization"),
            "x-api-key": self.headers.get("x-api-key"),
            "anthropic-version": self.headers.get("anthropic-version"),
            "anthropic-beta": self.headers.get("anthropic-beta"),
            "user-agent": self.headers.get("User-Agent"),
            "model": body_json.get("model") if isinstance(body_json, dict) else None,
            "stream": body_json.get("stream") if isinstance(body_json, dict) else None,
        }
        if RECORD_BODY:
            line["headers"] = [[k, v] for k, v in self.headers.items()]
            line["body"] = body_json if body_json is not None else raw.decode("utf-8", "replace")
        data = (json.dumps(line) + "\n").encode()
        with record_lock:
            fd = os.open(RECORD, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def _send(self, status, content_type, body, rid=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("request-id", rid or request_id())
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status, obj, rid=None):
        self._send(status, "application/json", json.dumps(obj).encode(), rid)

    def _send_error(self, err):
        rid = request_id()
        self._send_json(err.status, {"type": "error", "error": {"type": err.kind, "message": err.message},
                                     "request_id": rid}, rid)

    # -- the API ------------------------------------------------------------

    def _handle(self):
        path = self.path.split("?", 1)[0]
        if self.command in ("GET", "HEAD") and path == "/ready":
            self._send(200, "text/plain", b"ready\n")
            return
        raw, body, status = b"", None, 500
        try:
            raw = self._read_body()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            if not (self.headers.get("x-api-key") or self.headers.get("Authorization")):
                raise ApiError(401, "authentication_error", "x-api-key header is required")
            routes = {("POST", "/v1/messages"): self._messages,
                      ("POST", "/v1/messages/count_tokens"): self._count_tokens}
            route = routes.get((self.command, path))
            if route is None:
                raise ApiError(404, "not_found_error", "Not Found")
            if not self.headers.get("anthropic-version"):
                raise ApiError(400, "invalid_request_error", "anthropic-version: header is required")
            if not raw:
                raise ApiError(400, "invalid_request_error", "request body is required")
            if body is None:
                raise ApiError(400, "invalid_request_error", "There was an issue with the JSON body of your request: it is not valid JSON")
            if not isinstance(body, dict):
                raise ApiError(400, "invalid_request_error", "request body must be a JSON object")
            status = route(body, raw)
        except ApiError as err:
            status = err.status
            self._send_error(err)
        except (ValueError, KeyError, TypeError) as err:
            status = 500
            self.close_connection = True
            self._send_error(ApiError(500, "api_error", f"stand-in failure: {err}"))
        finally:
            self._record(status, body, raw)

    @staticmethod
    def _require(body, fields):
        for field in fields:
            if field not in body:
                raise ApiError(400, "invalid_request_error", f"{field}: Field required")
        if not isinstance(body["model"], str):
            raise ApiError(400, "invalid_request_error", "model: Input should be a valid string")
        if not isinstance(body["messages"], list):
            raise ApiError(400, "invalid_request_error", "messages: Input should be a valid list")

    def _count_tokens(self, body, raw):
        self._require(body, ("model", "messages"))
        self._send_json(200, {"input_tokens": estimate_tokens(raw)})
        return 200

    def _messages(self, body, raw):
        self._require(body, ("model", "max_tokens", "messages"))
        pieces = reply_pieces(REPLY)
        usage_in = estimate_tokens(raw)
        usage_out = len(pieces)
        message = {
            "id": "msg_stand_in_" + secrets.token_hex(8),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": REPLY}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": usage_in, "output_tokens": usage_out,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }
        if body.get("stream") is not True:
            self._send_json(200, message)
            return 200
        start = dict(message, content=[], stop_reason=None,
                     usage=dict(message["usage"], output_tokens=1))
        events = [("message_start", {"type": "message_start", "message": start}),
                  ("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}}),
                  ("ping", {"type": "ping"})]
        events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": p}}) for p in pieces]
        events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
                   ("message_delta", {"type": "message_delta",
                                      "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": {"output_tokens": usage_out}}),
                   ("message_stop", {"type": "message_stop"})]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", request_id())
        self.end_headers()
        for name, data in events:
            chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        return 200

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def log_message(self, fmt, *args):
        sys.stderr.write("anthropic-api: " + (fmt % args) + "\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's own thread, so a
        # client that stalls in it holds up nobody else.
        request.settimeout(Handler.timeout)
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as err:
            sys.stderr.write(f"anthropic-api: TLS handshake with {client_address[0]} failed: {err}\n")
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass


def main():
    global RECORD
    if len(sys.argv) not in (5, 6):
        sys.stderr.write("usage: anthropic_api.py CERT KEY PORT RECORD [BIND]\n")
        return 2
    cert, key, port, RECORD = sys.argv[1:5]
    bind = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    tls.set_alpn_protocols(["http/1.1"])
    server = Server((bind, int(port)), Handler)
    server.tls = tls
    server.serve_forever()
    return 0


RECORD = None

if __name__ == "__main__":
    sys.exit(main())
