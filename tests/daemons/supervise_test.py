"""Tests for images/supervise: the MCP server run as bottle-init starts it.

The host's side (`bottle supervise`) is played here by writing
<id>.decision.json into the queue the way bottle.supervise does.
"""

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import harness as h

RUN = os.path.join(h.ROOT, "images", "supervise", "run")
S = {}
MAX_WAIT = 4


def setup():
    d = S["dir"] = h.tmpdir()
    S["queue"] = os.path.join(d, "queue")
    os.mkdir(S["queue"])
    S["audit"] = os.path.join(d, "audit.jsonl")
    S["routes"] = os.path.join(d, "routes.json")
    with open(S["routes"], "w") as f:
        json.dump({"version": 1, "routes": [
            {"host": "api.github.com", "auth_scheme": "token", "token_env": "EGRESS_TOKEN_0", "matches": []},
            {"host": "pypi.org", "auth_scheme": None, "token_env": None, "matches": []}]}, f)
    S["port"] = h.free_port()
    S["log"] = os.path.join(d, "supervise.log")
    env = h.clean_env(SUPERVISE_PORT=S["port"], SUPERVISE_QUEUE_DIR=S["queue"], SUPERVISE_AUDIT=S["audit"],
                      SUPERVISE_ROUTES=S["routes"], SUPERVISE_WAIT_SECONDS=MAX_WAIT,
                      SUPERVISE_BOTTLE_SLUG="quiet-otter-1234")
    S["proc"] = h.spawn([RUN], env, S["log"])
    h.wait_port(S["port"], S["proc"], log_path=S["log"])


def teardown():
    S.clear()


def post(body, headers=None, raw=False, path="/", method="POST", timeout=30):
    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{S['port']}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def rpc(method, params=None, rid=1):
    msg = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    status, body, headers = post(msg)
    assert status == 200, (status, body)
    assert headers.get("Content-Type") == "application/json", headers.get("Content-Type")
    out = json.loads(body)
    assert out["jsonrpc"] == "2.0" and out["id"] == rid, out
    return out


def call(tool, args, rid=1):
    return rpc("tools/call", {"name": tool, "arguments": args}, rid=rid)["result"]


def requests():
    return sorted(f for f in os.listdir(S["queue"]) if f.endswith(".request.json"))


def request_entry(rid):
    return json.loads(h.read(os.path.join(S["queue"], f"{rid}.request.json")))


def decide(rid, decision, note="", approved_input=None):
    """What bottle.supervise writes: a temporary name renamed into place."""
    path = os.path.join(S["queue"], f"{rid}.decision.json")
    d = {"id": rid, "decision": decision, "note": note, "by": "alice", "time": "2026-01-01T00:00:00Z"}
    if approved_input is not None:
        d["input"] = approved_input
    with open(path + ".tmp", "w") as f:
        json.dump(d, f)
    os.rename(path + ".tmp", path)


def wait_for_request(before, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [f for f in requests() if f not in before]
        if new:
            return new[0].split(".")[0]
        time.sleep(0.05)
    raise AssertionError("no request was queued")


def audit():
    if not os.path.exists(S["audit"]):
        return []
    return [json.loads(line) for line in h.read(S["audit"]).splitlines()]


def test_initialize():
    out = rpc("initialize", {"protocolVersion": "2025-03-26", "capabilities": {},
                             "clientInfo": {"name": "test", "version": "0"}})
    res = out["result"]
    assert res["protocolVersion"] == "2025-03-26", res
    assert res["capabilities"] == {"tools": {}}, res
    assert res["serverInfo"]["name"] == "bottle-supervise", res
    res = rpc("initialize", {"protocolVersion": "1999-01-01"}, rid="s")["result"]
    assert res["protocolVersion"] == "2025-06-18", res


def test_initialized_notification_202():
    status, body, _ = post({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert status == 202 and body == b"", (status, body)


def test_tools_list():
    tools = {t["name"]: t for t in rpc("tools/list", rid=2)["result"]["tools"]}
    assert sorted(tools) == ["list_egress", "request_capability", "request_egress"], tools
    eg = tools["request_egress"]["inputSchema"]
    assert sorted(eg["required"]) == ["host", "reason"] and eg["additionalProperties"] is False, eg
    assert eg["properties"]["port"]["type"] == "integer", eg
    cap = tools["request_capability"]["inputSchema"]
    assert sorted(cap["required"]) == ["capability", "reason"], cap
    assert tools["list_egress"]["inputSchema"]["properties"] == {}


def test_egress_validation_errors_queue_nothing():
    before = requests()
    cases = [
        ({"reason": "r"}, "host must be a non-empty string"),
        ({"host": "", "reason": "r"}, "host must be a non-empty string"),
        ({"host": "localhost", "reason": "r"}, "not a fully qualified name"),
        ({"host": "exa mple.com", "reason": "r"}, "not a valid DNS name"),
        ({"host": "-bad.example.com", "reason": "r"}, "not a valid DNS name"),
        ({"host": "evil.com/path", "reason": "r"}, "not a valid DNS name"),
        ({"host": "10.0.0.1", "reason": "r"}, "IP address"),
        ({"host": "a" * 250 + ".com", "reason": "r"}, "longer than 253"),
        ({"host": "example.com"}, "reason must be a non-empty string"),
        ({"host": "example.com", "reason": "x" * 2001}, "reason is longer than 2000"),
        ({"host": "example.com", "reason": "a\x1bb"}, "control characters"),
        ({"host": "example.com", "reason": "r", "port": 0}, "port must be a number from 1 to 65535"),
        ({"host": "example.com", "reason": "r", "port": "443"}, "port must be"),
        ({"host": "example.com", "reason": "r", "wait_seconds": -1}, "wait_seconds"),
        ({"host": "example.com", "reason": "r", "token": "x"}, "unknown argument 'token'"),
    ]
    for args, want in cases:
        res = call("request_egress", args, rid=20)
        text = res["content"][0]["text"]
        assert res["isError"] is True and text.startswith("Not queued") and want in text, (args, text)
    assert requests() == before
    assert audit() == [] or all(a["input"].get("host") != "example.com" for a in audit())


def test_capability_validation_errors_queue_nothing():
    before = requests()
    for args, want in (({"capability": "x"}, "reason must be"), ({"capability": "", "reason": "r"}, "capability must"),
                       ({"capability": 3, "reason": "r"}, "capability must"),
                       ({"capability": "c" * 201, "reason": "r"}, "capability is longer than 200"),
                       ({"capability": "x", "reason": "r", "extra": 1}, "unknown argument 'extra'")):
        res = call("request_capability", args, rid=21)
        text = res["content"][0]["text"]
        assert res["isError"] is True and text.startswith("Not queued") and want in text, (args, text)
    res = rpc("tools/call", {"name": "request_capability", "arguments": ["x"]}, rid=22)["result"]
    assert res["isError"] is True, res
    assert requests() == before


def test_list_egress_names_hosts_never_slots():
    res = call("list_egress", {}, rid=23)
    assert res["isError"] is False, res
    assert res["structuredContent"]["routes"] == [
        {"host": "api.github.com", "authenticated": True, "restricted": False},
        {"host": "pypi.org", "authenticated": False, "restricted": False}], res
    text = res["content"][0]["text"]
    assert "api.github.com (credential injected)" in text and "pypi.org" in text, text
    assert "EGRESS_TOKEN" not in json.dumps(res), res
    res = call("list_egress", {"x": 1}, rid=24)
    assert res["isError"] is True, res


def test_egress_waits_and_returns_approved():
    before = requests()
    out = {}
    t = threading.Thread(target=lambda: out.update(call("request_egress", {
        "host": "Files.PythonHosted.org.", "reason": "pip install needs wheels"}, rid=3)))
    t.start()
    rid = wait_for_request(before)
    entry = request_entry(rid)
    assert entry["tool"] == "request_egress" and entry["input"] == {"host": "files.pythonhosted.org"}, entry
    assert entry["slug"] == "quiet-otter-1234" and entry["reason"] == "pip install needs wheels", entry
    assert entry["time"].endswith("Z"), entry
    time.sleep(0.5)
    assert t.is_alive(), "the call did not wait for a decision"
    decide(rid, "approved", "for this task only")
    t.join(10)
    assert not t.is_alive()
    res = out
    assert res["isError"] is False, res
    assert res["structuredContent"] == {"status": "approved", "id": rid, "note": "for this task only"}, res
    text = res["content"][0]["text"]
    assert text.startswith("approved") and "files.pythonhosted.org is open now" in text, text
    assert "for this task only" in text, text
    lines = [a for a in audit() if a["id"] == rid]
    assert len(lines) == 1 and lines[0]["event"] == "request" and lines[0]["tool"] == "request_egress", lines


def test_an_edited_approval_names_the_host_opened():
    before = requests()
    out = {}
    t = threading.Thread(target=lambda: out.update(call("request_egress", {
        "host": "www.example.org", "reason": "docs"}, rid=9)))
    t.start()
    rid = wait_for_request(before)
    decide(rid, "approved", "approved docs.example.org instead of www.example.org", {"host": "docs.example.org"})
    t.join(10)
    text = out["content"][0]["text"]
    assert text.startswith("approved") and "docs.example.org is open now" in text, text


def test_denied_with_the_note():
    before = requests()
    out = {}
    t = threading.Thread(target=lambda: out.update(call("request_capability", {
        "capability": "a GitHub token with repo scope", "reason": "push"}, rid=4)))
    t.start()
    rid = wait_for_request(before)
    decide(rid, "denied", "push through git-gate instead")
    t.join(10)
    assert out["structuredContent"]["status"] == "denied", out
    assert out["content"][0]["text"].startswith("denied") and "push through git-gate instead" in out["content"][0]["text"]


def test_timeout_returns_pending_and_keeps_the_request():
    before = requests()
    t0 = time.monotonic()
    res = call("request_egress", {"host": "example.org", "port": 8443, "reason": "docs", "wait_seconds": 1}, rid=5)
    took = time.monotonic() - t0
    assert 0.9 <= took < 4, took
    assert res["structuredContent"]["status"] == "pending", res
    rid = res["structuredContent"]["id"]
    assert res["content"][0]["text"].startswith(f"pending (request {rid})"), res
    assert [f for f in requests() if f not in before] == [f"{rid}.request.json"]
    assert request_entry(rid)["input"] == {"host": "example.org", "port": 8443}
    # wait_seconds above the server's limit is capped at it
    t0 = time.monotonic()
    res = call("request_capability", {"capability": "c", "reason": "r", "wait_seconds": 3600}, rid=6)
    assert res["structuredContent"]["status"] == "pending" and time.monotonic() - t0 < MAX_WAIT + 2, res
    res = call("request_capability", {"capability": "c", "reason": "r", "wait_seconds": 0}, rid=7)
    assert res["structuredContent"]["status"] == "pending", res


def test_concurrent_requests_each_get_their_own_answer():
    before = requests()
    n = 6
    out = [None] * n

    def one(i):
        out[i] = call("request_egress", {"host": f"h{i}.example.com", "reason": f"r{i}"}, rid=100 + i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while len([f for f in requests() if f not in before]) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    new = [f.split(".")[0] for f in requests() if f not in before]
    assert len(new) == n, new
    by_host = {request_entry(rid)["input"]["host"]: rid for rid in new}
    for i in range(n):
        decide(by_host[f"h{i}.example.com"], "approved" if i % 2 == 0 else "denied", f"n{i}")
    for t in threads:
        t.join(10)
    for i in range(n):
        sc = out[i]["structuredContent"]
        assert sc["id"] == by_host[f"h{i}.example.com"] and sc["note"] == f"n{i}", (i, sc)
        assert sc["status"] == ("approved" if i % 2 == 0 else "denied"), (i, sc)
    lines = h.read(S["audit"]).splitlines()
    assert all(json.loads(line)["event"] == "request" for line in lines), lines


def test_a_malformed_decision_is_ignored():
    before = requests()
    out = {}
    t = threading.Thread(target=lambda: out.update(call("request_capability", {
        "capability": "c", "reason": "r", "wait_seconds": 2}, rid=8)))
    t.start()
    rid = wait_for_request(before)
    with open(os.path.join(S["queue"], f"{rid}.decision.json"), "w") as f:
        f.write('{"decision": "maybe"}')
    t.join(10)
    assert out["structuredContent"]["status"] == "pending", out


def test_unknown_method_and_tool():
    err = rpc("resources/list", rid=30)["error"]
    assert err["code"] == -32601, err
    err = rpc("tools/call", {"name": "grant_everything", "arguments": {}}, rid=31)["error"]
    assert err["code"] == -32602, err


def test_protocol_errors():
    status, body, _ = post(b"{not json", raw=True)
    assert status == 400 and json.loads(body)["error"]["code"] == -32700, (status, body)
    status, body, _ = post({"id": 5, "method": "tools/list"})
    assert status == 200 and json.loads(body)["error"]["code"] == -32600, (status, body)
    status, _, headers = post(None, raw=True, method="GET")
    assert status == 405 and headers.get("Allow") == "POST", status
    status, _, _ = post({"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Origin": "http://evil.example"})
    assert status == 403, status
    status, body, _ = post({"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers={"Origin": "http://localhost:3000"})
    assert status == 200 and json.loads(body)["result"] == {}, (status, body)


def test_batch():
    status, body, _ = post([{"jsonrpc": "2.0", "method": "notifications/initialized"},
                            {"jsonrpc": "2.0", "id": 7, "method": "ping"}])
    assert status == 200 and json.loads(body) == [{"jsonrpc": "2.0", "id": 7, "result": {}}], body


def test_no_temp_files_left_and_no_reason_in_the_log():
    assert not [f for f in os.listdir(S["queue"]) if f.startswith(".")], os.listdir(S["queue"])
    log = h.read(S["log"])
    assert "request_egress" in log and "pip install needs wheels" not in log, log


def test_sigterm_stops_it():
    p = S["proc"]
    os.kill(p.pid, signal.SIGTERM)
    rc = p.wait(10)
    assert rc == 0, rc
