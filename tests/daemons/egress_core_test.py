"""Unit tests for images/egress/egress_core.py (no mitmproxy, no network)."""

import json
import os
import sys

from harness import ROOT

sys.path.insert(0, os.path.join(ROOT, "images", "egress"))
import egress_core as core  # noqa: E402

SECRET = "ghp_unit-secret-6d1f"

ROUTES = {
    "version": 1,
    "routes": [
        {"host": "api.github.com", "auth_scheme": "Bearer", "token_env": "EGRESS_TOKEN_0",
         "matches": [{"paths": [{"type": "prefix", "value": "/repos/"}], "methods": ["GET", "POST"]},
                     {"paths": [{"type": "exact", "value": "/user"}]}]},
        {"host": "Gitea.Example.org.", "auth_scheme": "token", "token_env": "EGRESS_TOKEN_1",
         "matches": []},
        {"host": "pypi.org", "auth_scheme": None, "token_env": None, "matches": []},
        {"host": "empty.example", "auth_scheme": "Bearer", "token_env": "EGRESS_TOKEN_2"},
    ],
}
ENV = {"EGRESS_TOKEN_0": SECRET, "EGRESS_TOKEN_1": "gitea-val", "EGRESS_TOKEN_2": ""}


def table(doc=None):
    return core.parse_routes(json.dumps(doc or ROUTES))


def expect_error(doc, fragment):
    text = doc if isinstance(doc, str) else json.dumps(doc)
    try:
        core.parse_routes(text)
    except core.RoutesError as e:
        assert fragment in str(e), f"error {str(e)!r} lacks {fragment!r}"
        return
    raise AssertionError(f"accepted: {text}")


def route(**kw):
    r = {"host": "h.example", "auth_scheme": None, "token_env": None, "matches": []}
    r.update(kw)
    return {"version": 1, "routes": [r]}


def test_docs_example_parses():
    # The schema example in docs/bundle.md is the contract: it must load.
    doc = open(os.path.join(ROOT, "docs", "bundle.md")).read()
    start = doc.index("```json") + len("```json")
    t = core.parse_routes(doc[start:doc.index("```", start)])
    assert len(t) == 2 and t.lookup("api.github.com").token_env == "EGRESS_TOKEN_0"


def test_host_lookup_normalizes():
    t = table()
    for h in ("API.GITHUB.COM", "api.github.com.", "api.github.com:443", "Api.GitHub.com.:8443"):
        assert t.lookup(h) is not None, h
    assert t.lookup("gitea.example.org").auth_scheme == "token"
    assert t.lookup("github.com") is None
    assert t.lookup("evil-api.github.com") is None
    assert t.lookup("api.github.com.evil") is None
    assert core.normalize_host("[::1]:8080") == "::1"
    assert core.normalize_host("::1") == "::1"


def test_validation_rejects_bad_tables():
    expect_error("{", "not valid JSON")
    expect_error({"version": 2, "routes": []}, "version")
    expect_error({"version": 1}, "routes")
    expect_error({"version": 1, "routes": [], "extra": 1}, "unknown key 'extra'")
    expect_error(route(host=""), "routes[0].host")
    expect_error(route(host="a b"), "not a host name")
    expect_error(route(auth_scheme="Basic", token_env="EGRESS_TOKEN_0"), "auth_scheme")
    expect_error(route(auth_scheme="Bearer"), "set together")
    expect_error(route(token_env="EGRESS_TOKEN_0"), "set together")
    expect_error(route(auth_scheme="Bearer", token_env="GH_PAT"), "EGRESS_TOKEN_<n>")
    expect_error(route(matches=[{"paths": [{"type": "regex", "value": "/"}]}]), "type")
    expect_error(route(matches=[{"paths": [{"type": "prefix", "value": "repos"}]}]), "starting with '/'")
    expect_error(route(matches=[{"methods": ["get"]}]), "upper case")
    expect_error(route(matches=[{"method": ["GET"]}]), "unknown key 'method'")
    expect_error(route(tls=True), "unknown key 'tls'")
    dup = {"version": 1, "routes": [{"host": "a.example"}, {"host": "A.example."}]}
    expect_error(dup, "duplicate route for a.example")


def test_unknown_host_blocked():
    d = core.decide(table(), "GET", "example.com", "/", {}, ENV)
    assert not d.allowed and d.status == 403
    assert d.body == "blocked: domain not in allowlist: example.com", d.body
    d = core.decide_connect(table(), "Example.COM.")
    assert not d.allowed and d.body == "blocked: domain not in allowlist: example.com"
    assert core.decide_connect(table(), "pypi.org").allowed


def test_authenticated_route_injects_and_drops():
    d = core.decide(table(), "get", "api.github.com", "/repos/x/y?q=1",
                    {"Authorization": "Bearer placeholder", "Host": "api.github.com"}, ENV)
    assert d.allowed
    assert d.remove_headers == ("Authorization",)
    assert d.set_headers == {"Authorization": "Bearer " + SECRET}
    assert SECRET not in repr(d)
    d = core.decide(table(), "DELETE", "gitea.example.org", "/anything", {}, ENV)
    assert d.allowed and d.set_headers == {"Authorization": "token gitea-val"}


def test_bare_route_drops_authorization():
    d = core.decide(table(), "GET", "pypi.org", "/simple/", {"authorization": "Basic eA=="}, ENV)
    assert d.allowed and d.remove_headers == ("Authorization",) and d.set_headers == {}


def test_matches_ored_fields_anded():
    t = table()
    ok = [("GET", "/repos/a"), ("POST", "/repos/a/b"), ("GET", "/user"), ("DELETE", "/user")]
    for method, path in ok:
        assert core.decide(t, method, "api.github.com", path, {}, ENV).allowed, (method, path)
    bad = [("DELETE", "/repos/a"), ("GET", "/user/x"), ("GET", "/repo"), ("GET", "/"),
           ("GET", "/repos/../admin"), ("GET", "/repos/%2e%2e/admin"), ("GET", "/repos/a%2fb")]
    for method, path in bad:
        d = core.decide(t, method, "api.github.com", path, {}, ENV)
        assert not d.allowed and d.status == 403, (method, path)
        assert d.body.startswith("blocked: request not allowed by route: "), d.body
    d = core.decide(t, "DELETE", "api.github.com", "/repos/a?x=1", {}, ENV)
    assert d.body == "blocked: request not allowed by route: DELETE /repos/a on api.github.com", d.body


def test_missing_or_empty_slot_fails_closed():
    d = core.decide(table(), "GET", "empty.example", "/", {}, ENV)
    assert not d.allowed and d.body == "blocked: no credential for empty.example"
    d = core.decide(table(), "GET", "gitea.example.org", "/", {}, {"EGRESS_TOKEN_1": "  "})
    assert not d.allowed and d.body == "blocked: no credential for gitea.example.org"
    d = core.decide(table(), "GET", "gitea.example.org", "/", {}, {})
    assert not d.allowed and d.status == 403
    d = core.decide(table(), "GET", "gitea.example.org", "/", {}, {"EGRESS_TOKEN_1": "a\r\nX: y"})
    assert not d.allowed and "a\r\n" not in d.body


def test_host_header_must_match_destination():
    d = core.decide(table(), "GET", "pypi.org", "/", {"Host": "api.github.com"}, ENV)
    assert not d.allowed and d.body.startswith("blocked: ")
    assert core.decide(table(), "GET", "pypi.org", "/", [("host", "PyPI.org:443")], ENV).allowed


def test_describe_has_no_values():
    out = core.describe(table(), ENV)
    text = json.dumps(out)
    assert SECRET not in text and "gitea-val" not in text
    hosts = [r["host"] for r in out["routes"]]
    assert hosts == ["api.github.com", "gitea.example.org", "pypi.org", "empty.example"], hosts
    gh = out["routes"][0]
    assert gh["token_env"] == "EGRESS_TOKEN_0" and gh["token_present"] is True
    assert gh["matches"][0] == {"paths": [{"type": "prefix", "value": "/repos/"}], "methods": ["GET", "POST"]}
    assert out["routes"][3]["token_present"] is False
    assert "token_present" not in out["routes"][2]
    # What describe() prints loads back as the same table.
    again = core.parse_routes(json.dumps({"version": 1, "routes": [
        {k: v for k, v in r.items() if k != "token_present"} for r in out["routes"]]}))
    assert [r.host for r in again.routes] == hosts


def test_upstream_refusal_keeps_pipelocks_status_and_reason():
    # mitmproxy's error text for a refused upstream CONNECT (8.1.1 and 10.4.2)
    err = "Upstream proxy 127.0.0.1:8888 refused HTTP CONNECT request: 403 Forbidden"
    assert core.refused_status(err) == 403
    assert core.refused_status("Connection refused") is None
    assert core.refused_status(None) is None
    d = core.upstream_refusal(403, "CONNECT blocked: domain not in allowlist: x.test\n", "x.test")
    assert (d.allowed, d.status, d.body) == (False, 403, "blocked: domain not in allowlist: x.test")
    d = core.upstream_refusal(429, "CONNECT blocked: rate limit exceeded for x.test\n", "x.test")
    assert (d.status, d.body) == (429, "blocked: rate limit exceeded for x.test")
    d = core.upstream_refusal(403, "", "x.test")
    assert d.status == 403 and d.body.startswith("blocked: ")
    d = core.upstream_refusal(502, "tunnel dial failed\n", "x.test")
    assert d.status == 502 and "tunnel dial failed" in d.body and not d.body.startswith("blocked")
    d = core.upstream_refusal(503, "too many active tunnels", "x.test")
    assert d.status == 503 and "too many active tunnels" in d.body
    d = core.upstream_refusal(403, "CONNECT blocked: " + "y" * 5000, "x.test")
    assert len(d.body) <= len("blocked: ") + core.MAX_REASON
