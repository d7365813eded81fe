"""Policy addon and config loader of the pipelock STAND-IN (tests only).

pipelock is not packaged in Debian, so the test images run
tests/fakes/pipelock, which starts Debian's mitmdump with this addon. This
file owns the part of pipelock's behaviour bottle relies on, modelled on
pipelock's docs/configuration.md and its config loader:

- the YAML config is parsed strictly: one document, unknown top-level keys
  and unknown keys inside the sections modelled here are errors naming the
  line (pipelock decodes with yaml.v3 KnownFields(true));
- `mode`: strict (only `api_allowlist` hosts pass), balanced (every host
  passes), audit (log, never block); `enforce: false` turns blocks into logs;
- `api_allowlist` entries match case-insensitively; `*.example.com` also
  matches the apex `example.com`;
- `forward_proxy.enabled` gates CONNECT and absolute-URI proxy requests
  (405 otherwise, as pipelock answers);
- `tls_interception`: with `enabled` the tunnels are decrypted with the
  configured CA (the wrapper assembles mitmproxy's confdir), except for
  `passthrough_domains`, which are spliced; without it tunnels are spliced;
- DLP: URLs are always scanned (pipelock scans every URL); request bodies
  and headers (`scan_headers`, `header_mode` sensitive with
  `sensitive_headers`, or all but `ignore_headers`) only when
  `request_body_scanning.enabled` and its `action: block`. Patterns: the built-in `Anthropic API Key` and
  `AWS Access ID` (pipelock ships 48; these two are what the tests and
  bottle's defaults need), merged by name with `dlp.patterns`, honouring
  `include_defaults` and per-pattern `exempt_domains`.

Block answers are pipelock's: HTTP 403 with `blocked: <reason>` (a refused
CONNECT: `CONNECT blocked: <reason>`). SIGHUP reloads the config; one that
does not load keeps the old one (`pipelock: config reload failed: ...`).
Not modelled: SSRF checks, rate limits, entropy checks, response scanning,
MCP, reload on file change (behind a single-file bind mount pipelock's
directory watch would not see a host-side write anyway).

Upstream TLS is verified against $SSL_CERT_FILE when set, else the system
trust store (pipelock is a Go program, and Go reads SSL_CERT_FILE); the
wrapper passes that to mitmproxy as ssl_verify_upstream_trusted_ca.
"""

import asyncio
import re
import signal
import sys
import urllib.parse

import yaml

# pipelock's config.Config fields (internal/config/schema.go). Every one is
# accepted at the top level; only the ones in SECTIONS are interpreted.
KNOWN_TOP_LEVEL = (
    "version", "mode", "enforce", "explain_blocks", "api_allowlist", "suppress",
    "fetch_proxy", "forward_proxy", "websocket_proxy", "dlp", "canary_tokens",
    "response_scanning", "mcp_input_scanning", "mcp_tool_scanning",
    "mcp_tool_policy", "git_protection", "logging", "session_profiling",
    "adaptive_enforcement", "mcp_session_binding", "request_body_scanning",
    "kill_switch", "sentry", "metrics_listen", "emit", "tool_chain_detection",
    "mcp_ws_listener", "tls_interception", "cross_request_detection",
    "reverse_proxy", "scan_api", "address_protection", "seed_phrase_detection",
    "rules", "file_sentry", "sandbox", "flight_recorder", "mcp_binary_integrity",
    "mcp_tool_provenance", "behavioral_baseline", "airlock", "browser_shield",
    "media_policy", "a2a_scanning", "taint", "mediation_envelope", "redaction",
    "agents", "default_agent_identity", "bind_default_agent_identity",
    "license_key", "license_file", "license_public_key", "internal",
    "trusted_domains", "ssrf",
)

SECTIONS = {
    "forward_proxy": ("enabled", "max_tunnel_seconds", "idle_timeout_seconds",
                      "sni_verification", "redirect_websocket_hosts"),
    "tls_interception": ("enabled", "ca_cert", "ca_key", "passthrough_domains",
                         "cert_ttl", "cert_cache_size", "max_response_bytes"),
    "dlp": ("scan_env", "secrets_file", "min_env_secret_length",
            "include_defaults", "patterns", "action"),
    "request_body_scanning": ("enabled", "action", "max_body_bytes", "scan_headers",
                              "header_mode", "sensitive_headers", "ignore_headers"),
}
DLP_PATTERN_KEYS = ("name", "regex", "severity", "validator", "exempt_domains", "action")

# Same names and expressions as pipelock's built-ins; matching is always
# case-insensitive there.
DEFAULT_PATTERNS = (
    ("Anthropic API Key", r"sk-ant-[a-zA-Z0-9\-_]{10,}", "critical"),
    ("AWS Access ID", r"(AKIA|A3T|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ASIA)[A-Z0-9]{16,}", "critical"),
)
DEFAULT_SENSITIVE_HEADERS = ("Authorization", "Cookie", "X-Api-Key", "X-Token",
                             "Proxy-Authorization", "X-Goog-Api-Key")
DEFAULT_LISTEN = "127.0.0.1:8888"
DEFAULT_CA_CERT = "~/.pipelock/ca.pem"
DEFAULT_CA_KEY = "~/.pipelock/ca-key.pem"


class ConfigError(Exception):
    pass


def _line(node):
    return node.start_mark.line + 1


def _check_keys(node, allowed, where, path):
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"parsing config {path}: line {_line(node)}: {where} must be a mapping")
    for key, _ in node.value:
        if key.value not in allowed:
            known = f" (known: {', '.join(sorted(allowed))})" if len(allowed) <= 10 else ""
            raise ConfigError(
                f"parsing config {path}: line {_line(key)}: field {key.value} not found in {where}{known}")


def _want(value, kind, name, path):
    if value is None:
        return None
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"parsing config {path}: {name} must be true or false")
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"parsing config {path}: {name} must be a string")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"parsing config {path}: {name} must be an integer")
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"parsing config {path}: {name} must be a list of strings")
    return value


def match_domain(host, pattern):
    """pipelock's MatchDomain: case-insensitive, `*.x` also matches `x`."""
    host = host.lower().rstrip(".")
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host == pattern[2:] or host.endswith(pattern[1:])
    return host == pattern


def load_config(path):
    """Parses and validates a pipelock config; returns a plain dict of what
    the stand-in enforces. Raises ConfigError with a one-line message."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"reading config {path}: {e.strerror}") from None
    try:
        docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        data = yaml.safe_load(text) if len(docs) == 1 else None
    except yaml.YAMLError as e:
        raise ConfigError(f"parsing config {path}: {str(e).replace(chr(10), ' ')}") from None
    if len(docs) > 1:
        raise ConfigError(f"parsing config {path}: multiple YAML documents not supported"
                          " (pipelock config must be a single document)")
    root = docs[0] if docs else None
    if root is None:
        data = {}
    else:
        _check_keys(root, KNOWN_TOP_LEVEL, "type config.Config", path)
        for key, value in root.value:
            if key.value in SECTIONS:
                _check_keys(value, SECTIONS[key.value], key.value, path)
            if key.value == "dlp":
                for k2, v2 in value.value:
                    if k2.value == "patterns" and isinstance(v2, yaml.SequenceNode):
                        for item in v2.value:
                            _check_keys(item, DLP_PATTERN_KEYS, "dlp.patterns entry", path)

    def section(name):
        v = data.get(name)
        return v if isinstance(v, dict) else {}

    version = _want(data.get("version"), int, "version", path)
    mode = _want(data.get("mode"), str, "mode", path) or "balanced"
    if mode not in ("strict", "balanced", "audit"):
        raise ConfigError(f'invalid mode "{mode}": must be strict, balanced, or audit')
    allowlist = _want(data.get("api_allowlist"), list, "api_allowlist", path) or []
    if mode == "strict" and not allowlist:
        raise ConfigError("strict mode requires at least one domain in api_allowlist")
    enforce = _want(data.get("enforce"), bool, "enforce", path)

    fp = section("forward_proxy")
    tls = section("tls_interception")
    dlp = section("dlp")
    rbs = section("request_body_scanning")
    fetch = section("fetch_proxy")

    if dlp.get("action"):
        raise ConfigError(f'dlp.action "{dlp["action"]}" is not supported; DLP match behavior'
                          " depends on the calling surface (request_body_scanning.action for"
                          " HTTP bodies/headers, enforce/audit mode for URL scanning)")
    rbs_action = _want(rbs.get("action"), str, "request_body_scanning.action", path) or "warn"
    if rbs_action not in ("warn", "block"):
        raise ConfigError(f'invalid request_body_scanning.action "{rbs_action}": must be warn or block')
    header_mode = _want(rbs.get("header_mode"), str, "request_body_scanning.header_mode", path) or "sensitive"
    if header_mode not in ("sensitive", "all"):
        raise ConfigError(f'invalid request_body_scanning.header_mode "{header_mode}": must be sensitive or all')

    patterns = {}
    if _want(dlp.get("include_defaults"), bool, "dlp.include_defaults", path) is not False:
        for name, regex, severity in DEFAULT_PATTERNS:
            patterns[name] = (regex, severity, [])
    user_patterns = dlp.get("patterns") or []
    if not isinstance(user_patterns, list):
        raise ConfigError(f"parsing config {path}: dlp.patterns must be a list")
    for p in user_patterns:
        if not isinstance(p, dict) or not p.get("name"):
            raise ConfigError("DLP pattern missing name")
        if not p.get("regex"):
            raise ConfigError(f'DLP pattern "{p["name"]}" missing regex')
        if p.get("action") not in (None, "", "warn"):
            raise ConfigError(f'DLP pattern "{p["name"]}" has unsupported action "{p["action"]}";'
                              ' only "warn" is allowed as a per-pattern action')
        if p.get("action") == "warn":
            patterns.pop(p["name"], None)
            continue
        exempt = _want(p.get("exempt_domains"), list, f'dlp pattern "{p["name"]}" exempt_domains', path)
        patterns[p["name"]] = (p["regex"], p.get("severity") or "high", exempt or [])
    compiled = []
    for name, (regex, severity, exempt) in patterns.items():
        try:
            compiled.append((name, re.compile(regex, re.IGNORECASE), severity, exempt))
        except re.error as e:
            raise ConfigError(f'DLP pattern "{name}" has invalid regex: {e}') from None

    listen = _want(fetch.get("listen"), str, "fetch_proxy.listen", path) or DEFAULT_LISTEN
    return {
        "version": version if version is not None else 1,
        "mode": mode,
        "enforce": enforce is not False,
        "allowlist": allowlist,
        "listen": listen,
        "forward_enabled": _want(fp.get("enabled"), bool, "forward_proxy.enabled", path) is True,
        "tls_enabled": _want(tls.get("enabled"), bool, "tls_interception.enabled", path) is True,
        "ca_cert": _want(tls.get("ca_cert"), str, "tls_interception.ca_cert", path) or DEFAULT_CA_CERT,
        "ca_key": _want(tls.get("ca_key"), str, "tls_interception.ca_key", path) or DEFAULT_CA_KEY,
        "passthrough": _want(tls.get("passthrough_domains"), list,
                             "tls_interception.passthrough_domains", path) or [],
        "patterns": compiled,
        "body_scanning": _want(rbs.get("enabled"), bool, "request_body_scanning.enabled", path) is True,
        "body_action": rbs_action,
        # pipelock: an omitted scan_headers is Go's zero value, false.
        "scan_headers": _want(rbs.get("scan_headers"), bool,
                              "request_body_scanning.scan_headers", path) is True,
        "header_mode": header_mode,
        "sensitive_headers": _want(rbs.get("sensitive_headers"), list,
                                   "request_body_scanning.sensitive_headers", path)
        or list(DEFAULT_SENSITIVE_HEADERS),
        "ignore_headers": [h.lower() for h in (_want(rbs.get("ignore_headers"), list,
                                                      "request_body_scanning.ignore_headers", path) or [])],
    }


def dlp_match(cfg, text, host):
    """Returns the first (name, severity) whose pattern occurs in text and
    is not exempt for host, or None."""
    if not text:
        return None
    variants = [text]
    decoded = text
    for _ in range(3):  # pipelock decodes iteratively before matching
        nxt = urllib.parse.unquote_plus(decoded)
        if nxt == decoded:
            break
        decoded = nxt
        variants.append(decoded)
    for name, rx, severity, exempt in cfg["patterns"]:
        if any(match_domain(host, d) for d in exempt):
            continue
        if any(rx.search(v) for v in variants):
            return name, severity
    return None


def destination_reason(cfg, host, url):
    """Why pipelock's URL scanner refuses this destination, or None."""
    host = host.lower().rstrip(".")
    if cfg["mode"] == "strict" and not any(match_domain(host, d) for d in cfg["allowlist"]):
        return f"domain not in allowlist: {host}"
    hit = dlp_match(cfg, url, host)
    if hit:
        return f"DLP match: {hit[0]} ({hit[1]})"
    return None


try:
    from mitmproxy import ctx, http
except ImportError:  # the wrapper only needs load_config
    ctx = http = None


class PipelockPolicy:
    def __init__(self):
        self.cfg = None

    def load(self, loader):
        loader.add_option("pipelock_config", str, "", "pipelock YAML config file")
        loader.add_option("pipelock_mode", str, "", "overrides the config's mode")

    def configure(self, updated):
        if "pipelock_config" in updated or "pipelock_mode" in updated:
            if not ctx.options.pipelock_config:
                return
            cfg = load_config(ctx.options.pipelock_config)
            if ctx.options.pipelock_mode:
                cfg["mode"] = ctx.options.pipelock_mode
            self.cfg = cfg

    def running(self):
        # pipelock v2.3.0 reloads on SIGHUP (internal/config/reload.go:89-90,
        # reload_unix.go:15); the stand-in's wrapper passes the signal on.
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.reload)
        except (RuntimeError, NotImplementedError, ValueError):
            pass

    def reload(self):
        # A config that does not load keeps the old one, with pipelock's line
        # (reload.go:105-110); success is its "configuration reloaded" event.
        try:
            cfg = load_config(ctx.options.pipelock_config)
        except (ConfigError, OSError) as e:
            sys.stderr.write(f"pipelock: config reload failed: {e}\n")
            sys.stderr.flush()
            return
        if ctx.options.pipelock_mode:
            cfg["mode"] = ctx.options.pipelock_mode
        self.cfg = cfg
        sys.stderr.write(f"pipelock (stand-in): configuration reloaded (mode={cfg['mode']})\n")
        sys.stderr.flush()

    def _enforcing(self):
        return self.cfg["enforce"] and self.cfg["mode"] != "audit"

    def _block(self, flow, status, body, prefix="blocked: "):
        ctx.log.warn(f"pipelock: {prefix}{body} ({flow.request.method} {flow.request.pretty_host})")
        if status == 403 and not self._enforcing():
            return False
        flow.response = http.Response.make(status, f"{prefix}{body}\n",
                                           {"Content-Type": "text/plain; charset=utf-8"})
        return True

    def http_connect(self, flow):
        if self.cfg is None:
            return
        if not self.cfg["forward_enabled"]:
            self._block(flow, 405, "CONNECT not supported", prefix="")
            return
        host = flow.request.host
        reason = destination_reason(self.cfg, host, f"https://{host}:{flow.request.port}/")
        if reason:
            self._block(flow, 403, reason, prefix="CONNECT blocked: ")

    def tls_clienthello(self, data):
        if self.cfg is None:
            return
        host = data.client_hello.sni or (data.context.server.address or ("",))[0]
        if not self.cfg["tls_enabled"] or any(match_domain(host, d) for d in self.cfg["passthrough"]):
            data.ignore_connection = True

    def request(self, flow):
        if self.cfg is None or flow.response is not None:
            return
        cfg = self.cfg
        in_tunnel = flow.client_conn.tls_established
        if not in_tunnel and not cfg["forward_enabled"]:
            self._block(flow, 405, "forward proxy not enabled", prefix="")
            return
        host = flow.request.host
        header_host = flow.request.host_header
        if in_tunnel and header_host:
            authority = header_host.rsplit(":", 1)[0] if not header_host.startswith("[") else header_host
            if authority.lower().rstrip(".") != host.lower().rstrip("."):
                self._block(flow, 403, "authority mismatch: blocked", prefix="")
                return
        reason = destination_reason(cfg, host, flow.request.url)
        if reason and self._block(flow, 403, reason):
            return
        if not (cfg["body_scanning"] and cfg["body_action"] == "block"):
            return
        body = flow.request.get_content(strict=False) or b""
        hit = dlp_match(cfg, body.decode("utf-8", "replace"), host)
        if hit:
            self._block(flow, 403, f"request body contains secret: {hit[0]}")
            return
        if cfg["scan_headers"]:
            if cfg["header_mode"] == "all":
                names = [n for n in flow.request.headers.keys() if n.lower() not in cfg["ignore_headers"]]
            else:
                names = cfg["sensitive_headers"]
            for name in names:
                for value in flow.request.headers.get_all(name):
                    if dlp_match(cfg, value, host):
                        self._block(flow, 403, "request header contains secret")
                        return


addons = [PipelockPolicy()]
