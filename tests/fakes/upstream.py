#!/usr/bin/python3
"""A tiny HTTPS upstream for tests: answers every request with
`upstream ok <METHOD> <path>` and appends `<METHOD> <path> <Authorization>`
to a record file, so a test can see what arrived after the proxies.

    upstream.py CERT KEY PORT RECORD [BIND]
"""

import http.server
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with open(RECORD, "a", encoding="utf-8") as f:
            f.write(f"{self.command} {self.path} {self.headers.get('Authorization', '-')}\n")
        body = f"upstream ok {self.command} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, fmt, *args):
        sys.stderr.write("upstream: " + (fmt % args) + "\n")


if __name__ == "__main__":
    cert, key, port, RECORD = sys.argv[1:5]
    bind = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"
    server = http.server.ThreadingHTTPServer((bind, int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
