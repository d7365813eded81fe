"""Tests for images/supervise: the MCP server run as bottle-init starts it."""

import json
import os
import signal
import urllib.error
import urllib.request

import harness as h

RUN = os.path.join(h.ROOT, "images", "supervise", "run")
S = {}


def setup():
    d = S["dir"] = h.tmpdir()
    S["queue"] = os.path.join(d, "queue")
    os.mkdir(S["queue"])
    S["port"] = h.free_port()
    S["log"] = os.path.join(d, "supervise.log")
    env = h.clean_env(SUPERVISE_PORT=S["port"], SUPERVISE_QUEUE_DIR=S["queue"],
                      SUPERVISE_BOTTLE_SLUG="quiet-otter-1234")
    S["proc"] = h.spawn([RUN], env, S["log"])
    h.wait_port(S["port"], S["proc"], log_path=S["log"])


def teardown():
    S.clear()


def post(body, headers=None, raw=False, path="/", method="POST"):
    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{S['port']}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
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


def queued():
    return sorted(os.listdir(S["queue"]))


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
    tools = rpc("tools/list", rid=2)["result"]["tools"]
    assert [t["name"] for t in tools] == ["request_capability"], tools
    schema = tools[0]["inputSchema"]
    assert schema["type"] == "object"
    assert schema["properties"]["capability"]["type"] == "string"
    assert schema["properties"]["reason"]["type"] == "string"
    assert sorted(schema["required"]) == ["capability", "reason"]


def test_call_queues_one_file():
    before = queued()
    out = rpc("tools/call", {"name": "request_capability",
                             "arguments": {"capability": "egress to files.pythonhosted.org",
                                           "reason": "pip install needs wheels"}}, rid=3)
    res = out["result"]
    assert res.get("isError") is False, res
    text = res["content"][0]["text"]
    assert res["content"][0]["type"] == "text" and "queued" in text.lower() and "human" in text, text
    new = [f for f in queued() if f not in before]
    assert len(new) == 1 and new[0].endswith(".json"), new
    entry = json.loads(h.read(os.path.join(S["queue"], new[0])))
    assert set(entry) == {"id", "time", "slug", "capability", "reason", "status"}, entry
    assert entry["slug"] == "quiet-otter-1234" and entry["status"] == "pending"
    assert entry["capability"] == "egress to files.pythonhosted.org"
    assert entry["reason"] == "pip install needs wheels"
    assert entry["id"] in text and entry["id"] in new[0], (entry["id"], text, new)
    assert entry["time"].endswith("Z") and "T" in entry["time"], entry["time"]


def test_each_call_its_own_file_no_temp_left():
    before = queued()
    ids = set()
    for i in range(3):
        rpc("tools/call", {"name": "request_capability",
                           "arguments": {"capability": f"cap {i}", "reason": "r"}}, rid=10 + i)
    new = [f for f in queued() if f not in before]
    assert len(new) == 3, new
    for f in new:
        ids.add(json.loads(h.read(os.path.join(S["queue"], f)))["id"])
    assert len(ids) == 3
    assert not [f for f in queued() if f.startswith(".")], queued()


def test_bad_arguments_not_queued():
    before = queued()
    for args in ({"capability": "x"}, {"capability": "", "reason": "r"}, {"capability": 3, "reason": "r"},
                 {"capability": "x", "reason": "r", "extra": 1}):
        res = rpc("tools/call", {"name": "request_capability", "arguments": args}, rid=20)["result"]
        assert res["isError"] is True and res["content"][0]["text"].startswith("Not queued"), (args, res)
    assert queued() == before


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


def test_sigterm_stops_it():
    p = S["proc"]
    os.kill(p.pid, signal.SIGTERM)
    rc = p.wait(10)
    assert rc == 0, rc
    log = h.read(S["log"])
    assert "queued request" in log and "pip install" not in log, log
