"""Integration tests: a real mitmdump started through images/egress/run.

Fixtures (built in setup, all local): a test CA and a leaf for
localhost/127.0.0.1 made with the openssl CLI; an HTTPS upstream
(http.server + ssl) that records the Authorization header it receives; a
minted egress CA in a temp confdir; a tiny CONNECT proxy standing in for
pipelock. Egress instances: `direct` (most tests, and the SIGHUP ones last
because they change its table), `chained`, whose EGRESS_UPSTREAM_PROXY is
the CONNECT proxy, as in a real bundle, and `refusing`, the same for the
tests where that proxy refuses as pipelock does.
"""

import json
import os
import select
import signal
import socket
import socketserver
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness as h

SECRET = "egress-live-" + os.urandom(8).hex()
RUN = os.path.join(h.ROOT, "images", "egress", "run")

S = {}  # fixture state


class Upstream(BaseHTTPRequestHandler):
    seen = []

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        Upstream.seen.append((self.command, self.path, self.headers.get_all("Authorization") or []))
        body = f"upstream ok {self.command} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PUT = _handle

    def log_message(self, *a):
        pass


class ConnectProxy(socketserver.BaseRequestHandler):
    """Answers CONNECT host:port by tunnelling to it; records the targets.
    A host in `refuse` gets pipelock's refusal instead: the status and the
    text/plain body Go's http.Error writes (pipelock v2.3.0
    internal/proxy/forward.go)."""

    targets = []
    refuse = {}

    def handle(self):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        method, target = head.split(b"\r\n", 1)[0].split(b" ")[:2]
        if method != b"CONNECT":
            self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        host, port = target.decode().rsplit(":", 1)
        ConnectProxy.targets.append(target.decode())
        if host in ConnectProxy.refuse:
            status, reason, text = ConnectProxy.refuse[host]
            body = (text + "\n").encode()
            self.request.sendall(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            return
        try:
            up = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            self.request.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            up.sendall(rest)
        socks = [self.request, up]
        try:
            while True:
                r, _, _ = select.select(socks, [], [], 30)
                if not r:
                    return
                for s in r:
                    buf = s.recv(65536)
                    if not buf:
                        return
                    (up if s is self.request else self.request).sendall(buf)
        finally:
            up.close()


class ThreadingTCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_server(server):
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return server


def routes_doc(routes):
    return json.dumps({"version": 1, "routes": routes}, indent=1)


FIRST_ROUTES = [
    {"host": "localhost", "auth_scheme": "Bearer", "token_env": "EGRESS_TOKEN_0",
     "matches": [{"paths": [{"type": "prefix", "value": "/api/"}], "methods": ["GET", "POST"]}]},
    {"host": "127.0.0.1", "auth_scheme": "Bearer", "token_env": "EGRESS_TOKEN_1", "matches": []},
]


def start_egress(name, routes_path, **extra):
    port = h.free_port()
    log = os.path.join(S["dir"], f"{name}.log")
    env = h.clean_env(
        EGRESS_PORT=port, EGRESS_CONFDIR=S["confdir"], EGRESS_ROUTES=routes_path,
        EGRESS_UPSTREAM_CA=S["upstream_ca"], EGRESS_TOKEN_0=SECRET, EGRESS_TOKEN_1="",
        TMPDIR=S["dir"], **extra)
    p = h.spawn([RUN], env, log)
    h.wait_port(port, p, timeout=30, log_path=log)
    return {"proc": p, "port": port, "log": log, "routes": routes_path}


def setup():
    h.need("mitmdump", "openssl", "curl")
    d = S["dir"] = h.tmpdir()
    h.make_ca(d, "upca", "bottle test upstream CA")
    leaf_key, leaf_pem = h.make_leaf(d, "upstream", "upca", "DNS:localhost,IP:127.0.0.1")
    S["upstream_ca"] = os.path.join(d, "upca.pem")
    eca_key, eca_pem = h.make_ca(d, "egressca", "bottle test egress CA")
    S["egress_ca"] = eca_pem
    S["confdir"] = os.path.join(d, "conf")
    os.mkdir(S["confdir"], 0o700)
    h.write(os.path.join(S["confdir"], "mitmproxy-ca.pem"),
            h.read(eca_key) + h.read(eca_pem), 0o600)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf_pem, leaf_key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    S["upstream"] = start_server(srv)
    S["up_port"] = srv.server_address[1]
    S["proxy"] = start_server(ThreadingTCP(("127.0.0.1", 0), ConnectProxy))

    for name in ("direct", "chained"):
        path = os.path.join(d, f"routes-{name}.json")
        h.write(path, routes_doc(FIRST_ROUTES))
    S["direct"] = start_egress("direct", os.path.join(d, "routes-direct.json"))
    S["chained"] = start_egress(
        "chained", os.path.join(d, "routes-chained.json"),
        EGRESS_UPSTREAM_PROXY=f"http://127.0.0.1:{S['proxy'].server_address[1]}")


def teardown():
    for k in ("upstream", "proxy"):
        if k in S:
            S[k].shutdown()
            S[k].server_close()
    S.clear()


def curl(inst, url, *args):
    argv = ["curl", "-sS", "--noproxy", "", "--proxy", f"http://127.0.0.1:{inst['port']}",
            "--cacert", S["egress_ca"], "--max-time", "20", "-w", "\n%{http_code}", *args, url]
    r = h.run(argv)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body, r


def up_url(path, host="localhost"):
    return f"https://{host}:{S['up_port']}{path}"


def last_seen(path):
    for method, p, auth in reversed(Upstream.seen):
        if p == path:
            return method, auth
    return None


def test_injects_real_token():
    code, body, r = curl(S["direct"], up_url("/api/hello"), "-H", "Authorization: Bearer placeholder")
    assert code == 200, (code, body, r.stderr, h.read(S["direct"]["log"]))
    assert body.startswith("upstream ok GET /api/hello"), body
    seen = last_seen("/api/hello")
    assert seen == ("GET", ["Bearer " + SECRET]), f"upstream saw {seen and (seen[0], len(seen[1]))}"


def test_post_allowed_by_match():
    code, body, _ = curl(S["direct"], up_url("/api/items"), "-X", "POST", "--data", "x=1")
    assert code == 200, (code, body)
    assert last_seen("/api/items") == ("POST", ["Bearer " + SECRET])


def test_unknown_host_connect_refused_before_tls():
    with socket.create_connection(("127.0.0.1", S["direct"]["port"]), timeout=10) as s:
        s.sendall(b"CONNECT unknown.example:443 HTTP/1.1\r\nHost: unknown.example:443\r\n\r\n")
        s.settimeout(10)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and b"content-length" in head.lower():
                n = int([l.split(b":")[1] for l in head.split(b"\r\n")
                         if l.lower().startswith(b"content-length")][0])
                if len(body) >= n:
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403"), head
    assert body.decode().strip() == "blocked: domain not in allowlist: unknown.example", body
    code, _, r = curl(S["direct"], "https://unknown.example/")
    assert r.returncode != 0 and "403" in r.stderr, (r.returncode, r.stderr)


def test_unknown_host_plain_http_blocked():
    code, body, _ = curl(S["direct"], "http://unknown.example/x")
    assert code == 403 and body.strip() == "blocked: domain not in allowlist: unknown.example", (code, body)


def test_matches_not_satisfied():
    before = len(Upstream.seen)
    code, body, _ = curl(S["direct"], up_url("/api/x"), "-X", "DELETE")
    assert code == 403, (code, body)
    assert body.strip() == "blocked: request not allowed by route: DELETE /api/x on localhost", body
    code, body, _ = curl(S["direct"], up_url("/admin"))
    assert code == 403 and body.startswith("blocked: request not allowed by route: GET /admin"), body
    assert len(Upstream.seen) == before, "a blocked request reached upstream"


def test_empty_slot_fails_closed():
    before = len(Upstream.seen)
    code, body, _ = curl(S["direct"], up_url("/", host="127.0.0.1"), "-H", "Authorization: Bearer placeholder")
    assert code == 403 and body.strip() == "blocked: no credential for 127.0.0.1", (code, body)
    assert len(Upstream.seen) == before


def test_allowlist_endpoint_without_values():
    code, body, _ = curl(S["direct"], "http://_egress.local/allowlist")
    assert code == 200, (code, body)
    doc = json.loads(body)
    assert [r["host"] for r in doc["routes"]] == ["localhost", "127.0.0.1"], doc
    assert doc["routes"][0]["token_env"] == "EGRESS_TOKEN_0"
    assert doc["routes"][0]["token_present"] is True and doc["routes"][1]["token_present"] is False
    assert SECRET not in body


def test_chained_through_upstream_proxy():
    ConnectProxy.targets.clear()
    code, body, r = curl(S["chained"], up_url("/api/chained"), "-H", "Authorization: Bearer placeholder")
    assert code == 200, (code, body, r.stderr, h.read(S["chained"]["log"]))
    assert last_seen("/api/chained") == ("GET", ["Bearer " + SECRET])
    assert f"localhost:{S['up_port']}" in ConnectProxy.targets, ConnectProxy.targets
    curl(S["chained"], "https://unknown.example/")
    assert "unknown.example:443" not in ConnectProxy.targets


def _refused(status, reason, text, path):
    # A fresh egress: "chained" already saw pipelock accept localhost and
    # does not ask again within a minute.
    if "refusing" not in S:
        path_r = os.path.join(S["dir"], "routes-refusing.json")
        h.write(path_r, routes_doc(FIRST_ROUTES))
        S["refusing"] = start_egress(
            "refusing", path_r, EGRESS_UPSTREAM_PROXY=f"http://127.0.0.1:{S['proxy'].server_address[1]}")
    ConnectProxy.refuse["localhost"] = (status, reason, text)
    try:
        return curl(S["refusing"], up_url(path), "-H", "Authorization: Bearer placeholder")
    finally:
        ConnectProxy.refuse.clear()


def test_refused_tunnel_then_allowed_again():
    _refused(403, "Forbidden", "CONNECT blocked: domain not in allowlist: localhost", "/api/first")
    code, body, r = curl(S["refusing"], up_url("/api/after"), "-H", "Authorization: Bearer placeholder")
    assert code == 200 and body.startswith("upstream ok GET /api/after"), (code, body, r.stderr)


def test_pipelock_403_reaches_the_agent_as_blocked():
    before = len(Upstream.seen)
    code, body, r = _refused(403, "Forbidden", "CONNECT blocked: domain not in allowlist: localhost",
                             "/api/refused")
    assert code == 403, (code, body, r.stderr, h.read(S["refusing"]["log"])[-3000:])
    assert body.strip() == "blocked: domain not in allowlist: localhost", body
    assert len(Upstream.seen) == before, "a refused request reached upstream"
    assert "blocked: domain not in allowlist: localhost" in h.read(S["refusing"]["log"])


def test_pipelock_429_keeps_its_status():
    code, body, r = _refused(429, "Too Many Requests", "CONNECT blocked: rate limit exceeded for localhost",
                             "/api/limited")
    assert code == 429, (code, body, r.stderr)
    assert body.strip() == "blocked: rate limit exceeded for localhost", body


def test_pipelock_dial_failure_is_a_gateway_error_naming_it():
    code, body, r = _refused(502, "Bad Gateway", "tunnel dial failed", "/api/dial")
    assert code == 502, (code, body, r.stderr)
    assert "pipelock" in body and "tunnel dial failed" in body, body
    assert not body.startswith("blocked: "), body


def test_token_not_on_argv():
    for name in ("direct", "chained"):
        pid = S[name]["proc"].pid
        cmdline = h.read(f"/proc/{pid}/cmdline", "rb")
        if not cmdline:
            raise h.Skip("no /proc here")
        assert b"mitmdump" in cmdline, cmdline  # run exec'd it: same pid
        assert SECRET.encode() not in cmdline
        assert SECRET.encode() in h.read(f"/proc/{pid}/environ", "rb"), "token not in its env"


def test_confdir_copy_is_private():
    copies = [e for e in os.listdir(S["dir"]) if e.startswith("egress-confdir.")]
    running = sum(1 for k in ("direct", "chained", "refusing") if k in S)
    assert len(copies) == running, copies
    for c in copies:
        path = os.path.join(S["dir"], c)
        assert os.stat(path).st_mode & 0o777 == 0o700
        assert os.stat(os.path.join(path, "mitmproxy-ca.pem")).st_mode & 0o777 == 0o600


def hup_and_wait(inst, needle):
    count = h.read(inst["log"]).count(needle)
    os.kill(inst["proc"].pid, signal.SIGHUP)
    h.wait_for(lambda: h.read(inst["log"]).count(needle) > count, 15, f"log line {needle!r}")


def test_sighup_with_broken_file_keeps_table():
    inst = S["direct"]
    h.write(inst["routes"], '{"version": 1, "routes": [')
    hup_and_wait(inst, "kept the previous table (2 routes)")
    assert inst["proc"].poll() is None, "egress died on SIGHUP"
    code, body, _ = curl(inst, up_url("/api/still"))
    assert code == 200 and last_seen("/api/still") == ("GET", ["Bearer " + SECRET]), (code, body)


def test_sighup_with_good_file_switches():
    inst = S["direct"]
    h.write(inst["routes"], routes_doc([{"host": "127.0.0.1", "auth_scheme": None, "token_env": None,
                                         "matches": []}]))
    hup_and_wait(inst, "reloaded 1 routes")
    code, body, r = curl(inst, up_url("/api/gone"))
    assert r.returncode != 0 and "403" in r.stderr, (r.returncode, r.stderr)  # CONNECT refused
    code, body, _ = curl(inst, "http://localhost/api/gone")
    assert code == 403 and body.strip() == "blocked: domain not in allowlist: localhost", (code, body)
    code, body, _ = curl(inst, up_url("/bare", host="127.0.0.1"), "-H", "Authorization: Bearer placeholder")
    assert code == 200, (code, body)
    assert last_seen("/bare") == ("GET", []), "the agent's Authorization was not dropped"


def test_no_secret_in_logs():
    for name in ("direct", "chained"):
        log = h.read(S[name]["log"])
        assert "GET https://localhost" in log or "GET https://127.0.0.1" in log, log[-2000:]
        assert SECRET not in log, f"token value in {name} log"


def test_missing_routes_file_stops_egress():
    log = os.path.join(S["dir"], "noroutes.log")
    env = h.clean_env(EGRESS_PORT=h.free_port(), EGRESS_CONFDIR=S["confdir"], TMPDIR=S["dir"],
                      EGRESS_ROUTES=os.path.join(S["dir"], "absent.json"))
    p = h.spawn([RUN], env, log)
    try:
        rc = p.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError("egress kept running without a route table")
    assert rc != 0, rc
    assert "cannot load routes" in h.read(log), h.read(log)


def test_run_builds_the_command_line():
    d = S["dir"]
    argfile = os.path.join(d, "args")
    fake = os.path.join(d, "fake-mitmdump")
    h.write(fake, '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$ARGFILE"\n', 0o755)
    base = dict(EGRESS_MITMDUMP=fake, ARGFILE=argfile, EGRESS_CONFDIR=S["confdir"], TMPDIR=d,
                EGRESS_TOKEN_0=SECRET)
    r = h.run([RUN], env=h.clean_env(**base))
    assert r.returncode == 0, r.stderr
    args = h.read(argfile).splitlines()
    addon = os.path.join(h.ROOT, "images", "egress", "egress_addon.py")
    assert args[:4] == ["--listen-host", "0.0.0.0", "--listen-port", "9099"], args
    assert ["-s", addon] == args[args.index("-s"):args.index("-s") + 2], args
    assert any(a.startswith("confdir=" + d) for a in args), args
    assert "--mode" not in args and not any("ssl_verify_upstream_trusted_ca" in a for a in args), args
    r = h.run([RUN], env=h.clean_env(**base, EGRESS_PORT=9199, EGRESS_UPSTREAM_PROXY="http://127.0.0.1:8888",
                                      EGRESS_UPSTREAM_CA="/etc/bottle/egress/upstream-ca.pem"))
    assert r.returncode == 0, r.stderr
    args = h.read(argfile).splitlines()
    assert "9199" in args and ["--mode", "upstream:http://127.0.0.1:8888"] == args[args.index("--mode"):][:2], args
    assert "ssl_verify_upstream_trusted_ca=/etc/bottle/egress/upstream-ca.pem" in args, args
    assert not any(SECRET in a for a in args)
    # with routes (an upstream) the minted CA is required; without, egress idles
    r = h.run([RUN], env=h.clean_env(**dict(base, EGRESS_CONFDIR=os.path.join(d, "nope"),
                                             EGRESS_UPSTREAM_PROXY="http://127.0.0.1:8888")))
    assert r.returncode != 0 and "no CA at" in r.stderr, (r.returncode, r.stderr)
    r = h.run([RUN], env=h.clean_env(**dict(base, EGRESS_CONFDIR=os.path.join(d, "nope"))))
    assert r.returncode == 0 and "idle" in r.stderr, (r.returncode, r.stderr)
