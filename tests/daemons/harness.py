"""harness: shared helpers for tests/daemons (processes, ports, certs).

Every process started through spawn() and every directory from tmpdir() is
tracked and removed by cleanup(), which the runner calls after each test
file, so nothing outlives the suite even when a test fails half way.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

_procs = []
_dirs = []


class Skip(Exception):
    """Raised by a test that cannot run here; the message says why."""


def need(*programs):
    for p in programs:
        if shutil.which(p) is None:
            raise Skip(f"{p} is not installed")


def tmpdir(prefix="bottle-daemons-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _dirs.append(d)
    return d


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra):
    """Our environment without proxy settings, plus extra."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
        and not k.startswith("EGRESS_")
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def spawn(argv, env, log_path, **kw):
    """Starts a tracked process in its own process group, output to log_path."""
    log = open(log_path, "ab")
    p = subprocess.Popen(
        argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, **kw
    )
    log.close()
    _procs.append(p)
    return p


def stop(p, timeout=5):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
    else:
        # The leader is gone; members of its group may not be.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def cleanup():
    while _procs:
        stop(_procs.pop())
    while _dirs:
        shutil.rmtree(_dirs.pop(), ignore_errors=True)


def wait_port(port, proc=None, timeout=20, log_path=None):
    """Waits until 127.0.0.1:port accepts TCP; fails early if proc died."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before listening"
                                 + (f"; log:\n{read(log_path)}" if log_path else ""))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {timeout}s"
                         + (f"; log:\n{read(log_path)}" if log_path else ""))


def wait_for(pred, timeout=10, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return b"" if "b" in mode else ""


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def run(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(argv, **kw)


def openssl(*args, cwd):
    r = run(["openssl", *args], cwd=cwd)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {r.stderr}")


def make_ca(d, name, cn):
    """A self-signed CA: d/name.key, d/name.pem."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={cn}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.pem")


def make_leaf(d, name, ca, sans):
    """A server certificate for sans (e.g. DNS:localhost,IP:127.0.0.1) signed by ca."""
    ext = os.path.join(d, f"{name}.ext")
    write(ext, "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
               f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", ext, cwd=d)
    return os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.pem")
