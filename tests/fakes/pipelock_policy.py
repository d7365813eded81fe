"""Policy addon and config loader of the pipelock STAND-IN (tests only).

pipelock is not packaged in Debian, so the test images run
tests/fakes/pipelock, which starts Debian's mitmdump with this addon. This
file models the rows of docs/bundle.md's pipelock table (pipelock v2.3.0,
each row citing its source file:line), and nothing more generous:

- the YAML config is parsed strictly: one document, unknown keys at the top
  level and inside the sections modelled here are errors naming the line
  (config/load.go: yaml.v3 KnownFields(true)); security booleans omitted
  from the file default to true (config/normalize.go applySecurityDefaults:
  dlp.scan_env, request_body_scanning.enabled and .scan_headers,
  response_scanning.enabled and .sse_streaming.enabled);
- the TLS CA is loaded as certgen.LoadCA does (certgen/certgen.go:164):
  the key must be a SEC1 EC key (x509.ParseECPrivateKey: a PKCS#8 or RSA key
  is refused), the certificate a CA with keyCertSign and an ECDSA key that
  matches; the key file must not be group-writable or world-readable
  (config/validate.go:841). A refusal stops the program at startup with
  pipelock's message (load_ca, used by the wrapper);
- `mode`: strict (only `api_allowlist` hosts pass), balanced, audit (log,
  never block); `enforce: false` turns blocks into logs;
- checks in pipelock's order (scanner/scanner.go:583): allowlist, core SSRF
  on IP literals, DLP on the URL, SSRF on the resolved addresses (unless the
  host is in `trusted_domains` or the address in `ssrf.ip_allowlist`;
  `internal` replaces the private ranges), then the per-base-domain rate
  limit (`fetch_proxy.monitoring.max_requests_per_minute`, default 60, a
  sliding minute; refusals are not counted) answered 429;
- `forward_proxy.enabled` gates CONNECT and absolute-URI requests (405);
- `tls_interception`: tunnels are decrypted with the configured CA except
  `passthrough_domains`, which are spliced; inside a tunnel the Host header
  must name the CONNECT's host and port (no port means 443), else 403
  `authority mismatch: blocked`; a buffered response larger than
  `max_response_bytes` (default 5 MiB) is replaced by 403 `blocked: response
  too large for scanning`;
- DLP: URLs are always scanned; request bodies and headers when
  `request_body_scanning.enabled` with `action: block`. Patterns: the
  built-in `Anthropic API Key` and `AWS Access ID` (pipelock ships 48; these
  two are what the tests and bottle's defaults need), merged by name with
  `dlp.patterns`, honouring `include_defaults` and `exempt_domains`;
  `dlp.scan_env` adds this process's environment values of 16+ characters
  with Shannon entropy above 3.0, except PATH, HOME and the like
  (scanner/scanner.go:1779);
- every decision is one JSON line on stdout shaped like pipelock's audit log
  (audit/logger.go:488 and :511: level, time, component, event, method,
  url or target, scanner, reason, message).

Answers are pipelock's: a refused CONNECT `CONNECT blocked: <reason>`
(forward.go:225), a refused request `blocked: <reason>` (forward.go:692),
403, or 429 for the rate limit. SIGHUP reloads the config
(internal/config/reload.go:89-110, reload_unix.go:15); one that does not
load keeps the old one (`pipelock: config reload failed: ...`). Not
modelled: entropy checks, response prompt-injection scanning (warn only in
bottle's config), SSE streaming, tunnel lifetimes, MCP, reload on file
change (behind a single-file bind mount pipelock's directory watch would
not see a host-side write anyway); base domains are the last two labels
(pipelock uses the public suffix list).

Upstream TLS is verified against $SSL_CERT_FILE when set, else the system
trust store (pipelock is a Go program, and Go reads SSL_CERT_FILE); the
wrapper passes that to mitmproxy as ssl_verify_upstream_trusted_ca.
"""

import asyncio
import ipaddress
import json
import math
import os
import re
import signal
import socket
import stat
import sys
import threading
import time
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
    "fetch_proxy": ("listen", "timeout_seconds", "max_response_mb", "user_agent", "monitoring"),
    "response_scanning": ("enabled", "action", "ask_timeout_seconds", "include_defaults",
                          "patterns", "exempt_domains", "sse_streaming"),
    "ssrf": ("ip_allowlist",),
}
SUBSECTIONS = {
    ("fetch_proxy", "monitoring"): ("max_url_length", "entropy_threshold",
                                    "subdomain_entropy_threshold", "max_requests_per_minute",
                                    "max_data_per_minute", "blocklist",
                                    "subdomain_entropy_exclusions"),
    ("response_scanning", "sse_streaming"): ("enabled", "action", "max_event_bytes"),
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
DEFAULT_MAX_REQ_PER_MINUTE = 60                 # config/normalize.go:143
DEFAULT_MAX_RESPONSE_BYTES = 5 * 1024 * 1024    # config/normalize.go:367
# config/normalize.go:222, the private ranges SSRF checks refuse
DEFAULT_INTERNAL = ("0.0.0.0/8", "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                    "169.254.0.0/16", "100.64.0.0/10", "::1/128", "fc00::/7", "fe80::/10",
                    "224.0.0.0/4", "ff00::/8")
# scanner/scanner.go:1714, environment names scan_env never treats as secrets
NON_SECRET_ENV = {"PWD", "OLDPWD", "HOME", "PATH", "TMPDIR", "TEMP", "TMP", "_", "SHELL", "USER",
                  "LOGNAME", "LANG", "LANGUAGE", "TERM", "HOSTNAME", "SHLVL", "EDITOR", "PAGER"}
NON_SECRET_ENV_PREFIXES = ("LC_", "XDG_")
ENV_LEAK = "Environment Variable Leak"  # scanner/text_dlp.go:203


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


def _default_true(section, key):
    """applySecurityDefaults: an omitted or null security boolean is true."""
    return section.get(key) is None or section.get(key) is True


def match_domain(host, pattern):
    """pipelock's MatchDomain: case-insensitive, `*.x` also matches `x`, IPs exact."""
    host = host.lower().rstrip(".")
    pattern = pattern.lower().rstrip(".")
    if _ip(host) is not None:
        return host == pattern
    if pattern.startswith("*."):
        return host == pattern[2:] or host.endswith(pattern[1:])
    return host == pattern


def _ip(text):
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def base_domain(host):
    """The rate limit's key. pipelock uses eTLD+1 from the public suffix list;
    the stand-in takes the last two labels (right for every test host)."""
    if _ip(host) is not None or "." not in host:
        return host
    return ".".join(host.split(".")[-2:])


def shannon_entropy(text):
    if not text:
        return 0.0
    counts = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def env_secrets(environ, min_len):
    """scan_env: environment values pipelock treats as secrets."""
    out = []
    for name, value in environ.items():
        upper = name.upper()
        if upper in NON_SECRET_ENV or upper.startswith(NON_SECRET_ENV_PREFIXES):
            continue
        if len(value) >= min_len and shannon_entropy(value) > 3.0:
            out.append(value)
    return out


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
                for k2, v2 in value.value:
                    sub = SUBSECTIONS.get((key.value, k2.value))
                    if sub:
                        _check_keys(v2, sub, f"{key.value}.{k2.value}", path)
            if key.value == "dlp":
                for k2, v2 in value.value:
                    if k2.value == "patterns" and isinstance(v2, yaml.SequenceNode):
                        for item in v2.value:
                            _check_keys(item, DLP_PATTERN_KEYS, "dlp.patterns entry", path)

    def section(name, parent=None):
        v = (parent if parent is not None else data).get(name)
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
    monitoring = section("monitoring", fetch)
    resp = section("response_scanning")
    sse = section("sse_streaming", resp)
    ssrf = section("ssrf")

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
    resp_enabled = _default_true(resp, "enabled")
    resp_action = _want(resp.get("action"), str, "response_scanning.action", path) or "warn"
    if resp_enabled and resp_action not in ("strip", "warn", "block", "ask"):
        raise ConfigError(f'invalid response_scanning action "{resp_action}": must be strip, warn, block, or ask')
    sse_action = _want(sse.get("action"), str, "response_scanning.sse_streaming.action", path) or ""
    if _default_true(sse, "enabled") and sse_action not in ("", "block", "warn"):
        raise ConfigError(f'invalid response_scanning.sse_streaming action "{sse_action}": must be block or warn')

    rate = _want(monitoring.get("max_requests_per_minute"), int,
                 "fetch_proxy.monitoring.max_requests_per_minute", path)
    if rate is not None and rate < 0:
        raise ConfigError("fetch_proxy.monitoring.max_requests_per_minute must be >= 0")
    max_resp = _want(tls.get("max_response_bytes"), int, "tls_interception.max_response_bytes", path)
    tunnel_s = _want(fp.get("max_tunnel_seconds"), int, "forward_proxy.max_tunnel_seconds", path)
    idle_s = _want(fp.get("idle_timeout_seconds"), int, "forward_proxy.idle_timeout_seconds", path)
    for name, v in (("forward_proxy.max_tunnel_seconds", tunnel_s),
                    ("forward_proxy.idle_timeout_seconds", idle_s)):
        if v is not None and v < 0:
            raise ConfigError(f"{name} must be positive")

    internal = data.get("internal")
    if internal is not None:
        _want(internal, list, "internal", path)
    nets = []
    for cidr in (DEFAULT_INTERNAL if internal is None else internal):
        try:
            nets.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ConfigError(f"invalid internal CIDR {cidr!r}") from None
    ip_allow = []
    for cidr in _want(ssrf.get("ip_allowlist"), list, "ssrf.ip_allowlist", path) or []:
        try:
            ip_allow.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ConfigError(f"invalid ssrf.ip_allowlist CIDR {cidr!r}") from None
    trusted = _want(data.get("trusted_domains"), list, "trusted_domains", path) or []
    for d in trusted:
        if _ip(d) is not None:
            raise ConfigError(f'trusted_domains: "{d}" is an IP address; use ssrf.ip_allowlist')

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
    scan_env = _default_true(dlp, "scan_env")
    min_env = _want(dlp.get("min_env_secret_length"), int, "dlp.min_env_secret_length", path) or 16

    tls_enabled = _want(tls.get("enabled"), bool, "tls_interception.enabled", path) is True
    ca_cert = os.path.expanduser(_want(tls.get("ca_cert"), str, "tls_interception.ca_cert", path)
                                 or DEFAULT_CA_CERT)
    ca_key = os.path.expanduser(_want(tls.get("ca_key"), str, "tls_interception.ca_key", path)
                                or DEFAULT_CA_KEY)
    config_dir = os.path.dirname(os.path.abspath(path))
    ca_cert = ca_cert if os.path.isabs(ca_cert) else os.path.join(config_dir, ca_cert)
    ca_key = ca_key if os.path.isabs(ca_key) else os.path.join(config_dir, ca_key)
    if tls_enabled:
        # config/validate.go:810 validateTLSInterception
        if max_resp is not None and max_resp <= 0:
            raise ConfigError("invalid config: tls_interception.max_response_bytes must be > 0")
        if not os.path.exists(ca_cert):
            raise ConfigError(f"invalid config: CA cert not found at {ca_cert} (run 'pipelock tls init'):"
                              f" stat {ca_cert}: no such file or directory")
        try:
            key_mode = stat.S_IMODE(os.stat(ca_key).st_mode)
        except OSError:
            raise ConfigError(f"invalid config: CA key not found at {ca_key} (run 'pipelock tls init'):"
                              f" stat {ca_key}: no such file or directory") from None
        if key_mode & 0o137:
            raise ConfigError(f"invalid config: CA key {ca_key} is too permissive (mode {key_mode:04o}):"
                              " restrict to 0600 or 0640")

    listen = _want(fetch.get("listen"), str, "fetch_proxy.listen", path) or DEFAULT_LISTEN
    return {
        "version": version if version is not None else 1,
        "mode": mode,
        "enforce": enforce is not False,
        "allowlist": allowlist,
        "listen": listen,
        "forward_enabled": _want(fp.get("enabled"), bool, "forward_proxy.enabled", path) is True,
        "tls_enabled": tls_enabled,
        "ca_cert": ca_cert,
        "ca_key": ca_key,
        "passthrough": _want(tls.get("passthrough_domains"), list,
                             "tls_interception.passthrough_domains", path) or [],
        "max_response_bytes": max_resp or DEFAULT_MAX_RESPONSE_BYTES,
        "max_requests_per_minute": rate or DEFAULT_MAX_REQ_PER_MINUTE,
        "internal": nets,
        "ip_allowlist": ip_allow,
        "trusted_domains": trusted,
        "patterns": compiled,
        "scan_env": scan_env,
        "env_secrets": env_secrets(os.environ, min_env) if scan_env else [],
        "body_scanning": _default_true(rbs, "enabled"),
        "body_action": rbs_action,
        "scan_headers": _default_true(rbs, "scan_headers"),
        "header_mode": header_mode,
        "sensitive_headers": _want(rbs.get("sensitive_headers"), list,
                                   "request_body_scanning.sensitive_headers", path)
        or list(DEFAULT_SENSITIVE_HEADERS),
        "ignore_headers": [h.lower() for h in (_want(rbs.get("ignore_headers"), list,
                                                      "request_body_scanning.ignore_headers", path) or [])],
    }


# ---- the CA, as certgen.LoadCA (certgen/certgen.go:164) -------------------

def _pem_first_block(text):
    """pem.Decode: the first PEM block's type and DER, or None."""
    m = re.search(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", text, re.S)
    if not m:
        return None
    import base64
    try:
        return m.group(1), base64.b64decode("".join(m.group(2).split()), validate=True)
    except ValueError:
        return None


def _der_items(der):
    """The (tag, content) items of a DER SEQUENCE, or None."""
    def read(buf, i):
        tag = buf[i]
        length = buf[i + 1]
        i += 2
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(buf[i:i + n], "big")
            i += n
        return tag, buf[i:i + length], i + length
    try:
        tag, body, _ = read(der, 0)
        if tag != 0x30:
            return None
        items, i = [], 0
        while i < len(body):
            t, c, i = read(body, i)
            items.append((t, c))
        return items
    except IndexError:
        return None


def parse_ec_private_key(der):
    """Go's x509.ParseECPrivateKey (crypto/x509/sec1.go): SEC1 only; a
    PKCS#8 or PKCS#1 structure is refused with Go's own message."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_der_private_key
    items = _der_items(der)
    if items and len(items) >= 2 and items[0][0] == 0x02:
        second = items[1][0]
        if second == 0x04:  # SEC1: version, privateKey OCTET STRING, [0], [1]
            version = int.from_bytes(items[0][1], "big")
            if version != 1:
                raise ValueError(f"x509: unknown EC private key version {version}")
            key = load_der_private_key(der, None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError("x509: failed to parse EC private key")
            return key
        if second == 0x30:
            raise ValueError("x509: failed to parse private key (use ParsePKCS8PrivateKey instead for this key format)")
        if second == 0x02:
            raise ValueError("x509: failed to parse private key (use ParsePKCS1PrivateKey instead for this key format)")
    raise ValueError("x509: failed to parse EC private key: asn1: structure error")


def load_ca(cert_path, key_path):
    """Loads the interception CA as pipelock does; raises ConfigError with
    pipelock's message (proxy/proxy.go:1211 wraps certgen.LoadCA's)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    def fail(msg):
        raise ConfigError(f"load TLS CA: {msg} (run 'pipelock tls init' to generate)")

    try:
        cert_text = open(cert_path, encoding="latin-1").read()
    except OSError as e:
        fail(f"read CA cert: open {cert_path}: {e.strerror.lower()}")
    block = _pem_first_block(cert_text)
    if block is None:
        fail("no PEM block in CA cert file")
    try:
        cert = x509.load_der_x509_certificate(block[1])
    except ValueError as e:
        fail(f"parse CA cert: x509: {e}")
    try:
        key_text = open(key_path, encoding="latin-1").read()
    except OSError as e:
        fail(f"read CA key: open {key_path}: {e.strerror.lower()}")
    block = _pem_first_block(key_text)
    if block is None:
        fail("no PEM block in CA key file")
    try:
        key = parse_ec_private_key(block[1])
    except ValueError as e:
        fail(f"parse CA key: {e}")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bc.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        fail("certificate is not a CA")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        cert_sign = ku.key_cert_sign
    except x509.ExtensionNotFound:
        cert_sign = False
    if not cert_sign:
        fail("CA certificate missing KeyUsageCertSign")
    pub = cert.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        fail("CA certificate public key is not ECDSA")
    raw = (lambda k: k.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    if raw(pub) != raw(key.public_key()):
        fail("CA key does not match certificate")
    return cert, key


# ---- decisions ------------------------------------------------------------

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
    for secret in cfg.get("env_secrets") or ():
        if any(secret in v for v in variants):
            return ENV_LEAK, "critical"
    return None


class RateLimiter:
    """scanner/ratelimit.go: a sliding minute per key; refusals not counted."""

    def __init__(self, per_minute):
        self.per_minute = per_minute
        self.seen = {}
        self.lock = threading.Lock()

    def check_and_record(self, key, now=None):
        now = time.monotonic() if now is None else now
        with self.lock:
            recent = [t for t in self.seen.get(key, ()) if t > now - 60]
            if len(recent) >= self.per_minute:
                self.seen[key] = recent
                return False
            recent.append(now)
            self.seen[key] = recent
            return True


def _internal(cfg, ip):
    return any(ip in n for n in cfg["internal"]) and not any(ip in n for n in cfg["ip_allowlist"])


def _core_internal(ip):
    return any(ip in ipaddress.ip_network(n) for n in DEFAULT_INTERNAL)


def resolve(host):
    return sorted({ai[4][0] for ai in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})


def destination_check(cfg, host, url, limiter=None, resolver=resolve):
    """The URL scanner's verdict for a destination, in pipelock's order:
    None when allowed, else (status, scanner, reason)."""
    host = host.lower().rstrip(".")
    if cfg["mode"] == "strict" and not any(match_domain(host, d) for d in cfg["allowlist"]):
        return 403, "allowlist", f"domain not in allowlist: {host}"
    literal = _ip(host)
    if literal is not None and _core_internal(literal) and not any(literal in n for n in cfg["ip_allowlist"]):
        return 403, "core_ssrf", f"core SSRF: {host} is a private/internal IP address"
    hit = dlp_match(cfg, url, host)
    if hit and hit[0] == ENV_LEAK:
        return 403, "dlp", "environment variable leak detected"  # scanner/scanner.go:1461
    if hit:
        return 403, "dlp", f"DLP match: {hit[0]} ({hit[1]})"
    if cfg["internal"] and literal is None and not any(match_domain(host, d) for d in cfg["trusted_domains"]):
        try:
            addrs = resolver(host)
        except OSError as e:
            return 403, "ssrf", f"SSRF check failed: DNS resolution error for {host}: {e}"
        for a in addrs:
            ip = _ip(a.split("%")[0])
            if ip is not None and _internal(cfg, ip):
                return 403, "ssrf", f"SSRF blocked: {host} resolves to internal IP {a}"
    if limiter is not None and not limiter.check_and_record(base_domain(host)):
        return 429, "ratelimit", f"rate limit exceeded for {host}"
    return None


def audit_line(level, event, message, **fields):
    """One JSON line as pipelock's audit logger writes it (zerolog, stdout)."""
    rec = {"level": level, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "component": "pipelock", "event": event}
    rec.update({k: v for k, v in fields.items() if v not in (None, "")})
    rec["message"] = message
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()


try:
    from mitmproxy import ctx, http
except ImportError:  # the wrapper only needs load_config and load_ca
    ctx = http = None


class PipelockPolicy:
    def __init__(self):
        self.cfg = None
        self.limiter = None

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
            self.limiter = RateLimiter(cfg["max_requests_per_minute"])

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
        self.limiter = RateLimiter(cfg["max_requests_per_minute"])
        sys.stderr.write(f"pipelock (stand-in): configuration reloaded (mode={cfg['mode']})\n")
        sys.stderr.flush()

    def _enforcing(self):
        return self.cfg["enforce"] and self.cfg["mode"] != "audit"

    def _block(self, flow, status, body, scanner, prefix="blocked: ", **where):
        flow.metadata["pipelock-answered"] = True
        audit_line("warn", "blocked", "request blocked", method=flow.request.method,
                   scanner=scanner, reason=body, client_ip=flow.client_conn.peername[0], **where)
        # audit mode and enforce: false log scanner verdicts without blocking
        # (proxy/forward.go:207); the Host check inside a tunnel always blocks.
        if scanner != "tls_authority_mismatch" and not self._enforcing():
            return False
        flow.response = http.Response.make(status, f"{prefix}{body}\n",
                                           {"Content-Type": "text/plain; charset=utf-8",
                                            "X-Content-Type-Options": "nosniff"})
        return True

    def http_connect(self, flow):
        if self.cfg is None:
            return
        target = f"{flow.request.host}:{flow.request.port}"
        if not self.cfg["forward_enabled"]:
            flow.response = http.Response.make(405, "CONNECT not supported\n",
                                               {"Content-Type": "text/plain; charset=utf-8"})
            return
        host = flow.request.host
        verdict = destination_check(self.cfg, host, f"https://{host}/", self.limiter)
        if verdict:
            status, scanner, reason = verdict
            self._block(flow, status, reason, scanner, prefix="CONNECT blocked: ", target=target)
            return
        audit_line("info", "allowed", "request allowed", method="CONNECT", target=target,
                   client_ip=flow.client_conn.peername[0], status_code=200)

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
        url = flow.request.url
        if not in_tunnel and not cfg["forward_enabled"]:
            flow.response = http.Response.make(405, "forward proxy not enabled\n",
                                               {"Content-Type": "text/plain; charset=utf-8"})
            return
        host = flow.request.host
        if in_tunnel:
            # proxy/intercept.go:365: Host must be the CONNECT's host:port
            # (no port in Host means 443).
            header = flow.request.host_header or ""
            m = re.match(r"^\[?([^\]]*?)\]?(?::(\d+))?$", header)
            h_host, h_port = (m.group(1), m.group(2) or "443") if m else (header, "443")
            if h_host.lower() != host.lower() or h_port != str(flow.request.port):
                self._block(flow, 403, "authority mismatch: blocked", "tls_authority_mismatch", prefix="",
                            url=url)
                return
        verdict = destination_check(cfg, host, url, self.limiter)
        if verdict and self._block(flow, verdict[0], verdict[2], verdict[1], url=url):
            return
        if not (cfg["body_scanning"] and cfg["body_action"] == "block"):
            return
        body = flow.request.get_content(strict=False) or b""
        hit = dlp_match(cfg, body.decode("utf-8", "replace"), host)
        if hit:
            self._block(flow, 403, f"request body contains secret: {hit[0]}", "body_dlp", url=url)
            return
        if cfg["scan_headers"]:
            if cfg["header_mode"] == "all":
                names = [n for n in flow.request.headers.keys() if n.lower() not in cfg["ignore_headers"]]
            else:
                names = cfg["sensitive_headers"]
            for name in names:
                for value in flow.request.headers.get_all(name):
                    if dlp_match(cfg, value, host):
                        self._block(flow, 403, "request header contains secret", "header_dlp", url=url)
                        return

    def response(self, flow):
        if self.cfg is None or flow.response is None or not flow.client_conn.tls_established:
            return
        if flow.metadata.get("pipelock-answered"):
            return
        # proxy/intercept.go:1209: a buffered response past the cap is refused.
        size = len(flow.response.raw_content or b"")
        if size > self.cfg["max_response_bytes"]:
            audit_line("warn", "blocked", "request blocked", method=flow.request.method, url=flow.request.url,
                       scanner="tls_response_blocked", reason="response too large for scanning")
            flow.response = http.Response.make(403, "blocked: response too large for scanning\n",
                                               {"Content-Type": "text/plain; charset=utf-8"})
            return
        audit_line("info", "allowed", "request allowed", method=flow.request.method, url=flow.request.url,
                   status_code=flow.response.status_code, size_bytes=size)


addons = [PipelockPolicy()]
