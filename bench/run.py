"""Measure the provider's hot endpoints under granian on the embedded defaults.

``make bench`` starts ``idp serve`` in a fresh temporary directory (SQLite,
a new RS256 key, rate limiting off), creates a client-credentials admin
client, a code-flow client and a member, then loads five endpoints one after
another with ``wrk`` (a pure-Python generator when ``wrk`` cannot be had) and
prints requests/s, p50 and p99 latency and error counts:

* discovery (``GET /.well-known/openid-configuration``) and JWKS
  (``GET /jwks.json``): pre-serialised bytes, so these show the floor cost of
  a request through granian, WSGI and Flask.
* ``client_credentials`` at ``POST /token``: client authentication (one
  indexed lookup), one RS256 signature, about 270 µs of a core per token on
  a current x86 core (``openssl speed rsa2048`` gives yours), and one
  inserted, committed row.  Signing and the single SQLite writer are where
  the time goes.
* introspection (``POST /introspect``) and UserInfo (``GET /userinfo``): a
  signature verification (about 20 µs) plus one indexed DB lookup of the
  token row (and the calling client for introspection, the member for
  UserInfo); no write, so they sit between the two above.

It shows where the time goes on this machine; it is not a capacity claim and
no test asserts a time.  Everything stays on the loopback interface, every
step is bounded in time, and the server's process group and the temporary
directory are removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import http.client
import importlib.metadata
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import requests

HOST = "127.0.0.1"
START_TIMEOUT_S = 90.0
CLI_TIMEOUT_S = 90.0
HTTP_TIMEOUT_S = 10.0
APT_TIMEOUT_S = 300.0
BENCH_PASSWORD = "pw-bench-1234"  # noqa: S105 - a throw-away account in a temporary database
MAX_DURATION_S = 600  # access tokens live 900 s; each is minted just before its run

# wrk runs one of these per endpoint: the request, plus a per-status tally
# printed as "STATUS <code> <count>" lines that run.py parses.
LUA_TEMPLATE = """\
wrk.method = "{method}"
wrk.body = "{body}"
{headers}
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {{}}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {{}}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      total[code] = (total[code] or 0) + n
    end
  end
  for code, n in pairs(total) do
    io.write(string.format("STATUS %d %d\\n", code, n))
  end
end
"""


class BenchError(Exception):
    """A step that stops the benchmark (or one endpoint) with a clear reason."""


def log(message: str) -> None:
    sys.stderr.write(f"bench: {message}\n")
    sys.stderr.flush()


def _raise_interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


# --- the server --------------------------------------------------------------------


def idp_executable() -> Path:
    """The ``idp`` console script of the interpreter running this file."""
    candidate = Path(sys.executable).parent / "idp"
    if candidate.exists():
        return candidate
    found = shutil.which("idp")
    if found:
        return Path(found)
    raise BenchError("no 'idp' command next to this Python: run .venv/bin/python bench/run.py")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def server_env(issuer: str) -> dict[str, str]:
    """This environment without any IDP_* setting, plus the two the run needs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env["IDP_SERVER_ISSUER"] = issuer
    env["IDP_RATELIMIT_ENABLED"] = "false"
    return env


_PROBLEM = re.compile(r"Traceback|\b(ERROR|CRITICAL)\b|Error:|Exception\b|database is locked")


class Server:
    """``idp serve`` in its own process group, cwd a scratch directory."""

    def __init__(self, idp: Path, workdir: Path, port: int, env: dict[str, str], workers: int):
        self.idp = idp
        self.workdir = workdir
        self.port = port
        self.env = env
        self.workers = workers
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # Configured by its environment, the server is a deployment: it
        # creates no schema on its own, so it is initialised first.
        subprocess.run(
            [str(self.idp), "init"],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
        )
        cmd = [str(self.idp), "serve", "--host", HOST, "--port", str(self.port)]
        if self.workers != 1:
            cmd += ["--workers", str(self.workers)]
        log(f"starting {' '.join(cmd[1:])} in {self.workdir}")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                raise BenchError(f"the server exited with status {code}:\n{self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise BenchError(
            f"the server did not answer within {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        # Drop the Rust backtrace granian appends to a Python one.
        kept = re.sub(r"\n\s*Stack backtrace:\n.*", "", text, flags=re.S).splitlines()
        return "\n".join("  | " + line for line in kept[-lines:])

    def problem_lines(self) -> list[str]:
        """Lines of the server's output that look like errors or tracebacks."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if _PROBLEM.search(line)]

    def stop(self) -> None:
        """SIGTERM to the whole group (granian has worker processes), then SIGKILL."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            log("the server did not stop on SIGTERM: sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        self.proc = None


def run_cli(
    idp: Path, workdir: Path, env: dict[str, str], args: list[str], stdin: str | None = None
) -> dict[str, Any]:
    """One ``idp ... --json`` call; its JSON object."""
    try:
        proc = subprocess.run(
            [str(idp), *args, "--json"],
            cwd=workdir,
            env=env,
            input=stdin or "",
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"'idp {' '.join(args)}' did not finish in {CLI_TIMEOUT_S:.0f} s"
        ) from None
    if proc.returncode != 0:
        raise BenchError(f"'idp {' '.join(args)}' failed: {proc.stderr.strip()}")
    try:
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"'idp {' '.join(args)}' printed no JSON: {proc.stdout!r}") from None
    return result


# --- tokens ----------------------------------------------------------------------------


def basic_auth(client_id: str, secret: str) -> str:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _snippet(resp: requests.Response) -> str:
    text = resp.text.strip()
    if "json" in resp.headers.get("content-type", ""):
        return text[:300]
    title = re.search(r"<title>(.*?)</title>", text, re.S)
    heading = re.search(r"<h1[^>]*>(.*?)</h1>", text, re.S)
    parts = [m.group(1).strip() for m in (title, heading) if m]
    return " / ".join(parts) if parts else text[:200]


def _describe(step: str, resp: requests.Response) -> str:
    location = resp.headers.get("location")
    where = f", Location {location}" if location else ""
    return f"{step} -> {resp.status_code}{where}: {_snippet(resp)}"


def client_credentials_token(base: str, client_id: str, secret: str) -> str:
    resp = requests.post(
        base + "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        headers={"Authorization": basic_auth(client_id, secret)},
        timeout=HTTP_TIMEOUT_S,
    )
    if resp.status_code != 200 or "access_token" not in resp.text:
        raise BenchError(_describe("POST /token (client_credentials)", resp))
    token: str = resp.json()["access_token"]
    return token


@dataclass(frozen=True, slots=True)
class WebClient:
    client_id: str
    secret: str
    redirect_uri: str


class BrowserFlow:
    """The authorization-code flow with PKCE, driven over plain HTTP."""

    def __init__(self, base: str, issuer: str, client: WebClient) -> None:
        self.base = base
        self.issuer = issuer
        self.client = client
        self.http = requests.Session()

    def _url(self, location: str) -> str:
        # The provider redirects to its issuer (localhost); we talk to 127.0.0.1.
        if location.startswith("/"):
            return self.base + location
        if location.startswith(self.issuer + "/"):
            return self.base + location[len(self.issuer) :]
        raise BenchError(f"unexpected redirect off the provider: {location}")

    def _get(self, step: str, location: str) -> requests.Response:
        try:
            return self.http.get(self._url(location), allow_redirects=False, timeout=HTTP_TIMEOUT_S)
        except requests.RequestException as e:
            raise BenchError(f"{step}: {e}") from None

    def _post(self, step: str, path: str, data: dict[str, str]) -> requests.Response:
        try:
            return self.http.post(
                self.base + path, data=data, allow_redirects=False, timeout=HTTP_TIMEOUT_S
            )
        except requests.RequestException as e:
            raise BenchError(f"{step}: {e}") from None

    @staticmethod
    def _csrf(step: str, resp: requests.Response, form_id: str) -> str:
        form = re.search(rf'<form[^>]*\bid="{form_id}".*?</form>', resp.text, re.S)
        token = form and re.search(r'name="csrf_token"\s+value="([^"]+)"', form.group(0))
        if not token:
            raise BenchError(f"{step}: no csrf_token in form#{form_id} ({_snippet(resp)})")
        return token.group(1)

    def _follow(self, step: str, resp: requests.Response) -> requests.Response:
        """Follow provider redirects until the consent page or the client's redirect_uri."""
        for _ in range(6):
            if resp.status_code not in (302, 303):
                raise BenchError(_describe(step, resp))
            location = resp.headers["location"]
            if location.startswith(self.client.redirect_uri) or "/consent?" in location:
                return resp
            resp = self._get(f"{step}, then GET {urlsplit(location).path}", location)
        raise BenchError(f"{step}: too many redirects")

    def user_access_token(self, username: str, password: str) -> str:
        c = self.client
        verifier = secrets.token_urlsafe(48)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": c.client_id,
                "redirect_uri": c.redirect_uri,
                "scope": "openid profile email",
                "state": "s",
                "nonce": "n",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        step = "GET /authorize"
        resp = self._get(step, "/authorize?" + query)
        location = resp.headers.get("location", "")
        if resp.status_code != 303 or "/login?interaction=" not in location:
            raise BenchError(_describe(step, resp))
        uid = parse_qs(urlsplit(location).query)["interaction"][0]

        step = "GET /login"
        resp = self._get(step, location)
        if resp.status_code != 200:
            raise BenchError(_describe(step, resp))
        csrf = self._csrf(step, resp, "login-form")
        step = "POST /login"
        resp = self._post(
            step,
            "/login",
            {
                "csrf_token": csrf,
                "interaction": uid,
                "username": username,
                "password": password,
            },
        )
        resp = self._follow(step, resp)

        location = resp.headers["location"]
        if "/consent?" in location:
            step = "GET /consent"
            resp = self._get(step, location)
            if resp.status_code != 200:
                raise BenchError(_describe(step, resp))
            csrf = self._csrf(step, resp, "consent-form")
            step = "POST /consent"
            resp = self._post(
                step,
                "/consent",
                {
                    "csrf_token": csrf,
                    "interaction": uid,
                    "decision": "allow",
                },
            )
            resp = self._follow(step, resp)
            location = resp.headers["location"]
            if not location.startswith(c.redirect_uri):
                raise BenchError(_describe(step, resp))

        params = parse_qs(urlsplit(location).query)
        if "code" not in params or params.get("state") != ["s"]:
            raise BenchError(f"redirect to the client without code and state: {location}")
        step = "POST /token (authorization_code)"
        try:
            resp = requests.post(
                self.base + "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": params["code"][0],
                    "redirect_uri": c.redirect_uri,
                    "code_verifier": verifier,
                },
                headers={"Authorization": basic_auth(c.client_id, c.secret)},
                timeout=HTTP_TIMEOUT_S,
            )
        except requests.RequestException as e:
            raise BenchError(f"{step}: {e}") from None
        if resp.status_code != 200 or "access_token" not in resp.text:
            raise BenchError(_describe(step, resp))
        token: str = resp.json()["access_token"]
        return token


# --- load generation -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    method: str
    path: str
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Result:
    endpoint: str
    requests: int = 0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non_2xx_3xx: int = 0
    socket_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.non_2xx_3xx + self.socket_errors

    def as_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "errors": self.errors,
            "non_2xx_3xx": self.non_2xx_3xx,
            "socket_errors": self.socket_errors,
            "statuses": self.statuses,
            "skipped": self.skipped,
            "notes": self.notes,
        }


@dataclass(frozen=True, slots=True)
class Load:
    threads: int
    connections: int
    duration: int
    warmup: int


def _lua_string(value: str) -> str:
    if not re.fullmatch(r"[\x20-\x7e]*", value):
        raise BenchError(f"not printable ASCII, cannot go into a wrk script: {value!r}")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def write_lua(target: Target, directory: Path) -> Path:
    headers = "\n".join(
        f'wrk.headers["{_lua_string(k)}"] = "{_lua_string(v)}"' for k, v in target.headers.items()
    )
    script = directory / f"{re.sub(r'[^a-z0-9]+', '-', target.name.lower())}.lua"
    script.write_text(
        LUA_TEMPLATE.format(method=target.method, body=_lua_string(target.body), headers=headers)
    )
    return script


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str, result: Result) -> None:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in", output, re.M)
    if not rps or not total:
        raise BenchError(f"cannot read wrk's output:\n{output}")
    result.rps = float(rps.group(1))
    result.requests = int(total.group(1))
    for pct, attr in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
        if m:
            setattr(result, attr, float(m.group(1)) * _UNIT_MS[m.group(2)])
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result.non_2xx_3xx = int(non2xx.group(1)) if non2xx else 0
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result.socket_errors = sum(int(n) for n in sock.groups()) if sock else 0
    if sock:
        result.notes.append("socket errors: " + sock.group(0).split(": ", 1)[1])
    result.statuses = {
        code: int(n) for code, n in sorted(re.findall(r"^STATUS (\d+) (\d+)$", output, re.M))
    }


def run_wrk(wrk: str, url: str, script: Path, load: Load, seconds: int, result: Result) -> None:
    cmd = [
        wrk,
        f"-t{min(load.threads, load.connections)}",
        f"-c{load.connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + 30} s") from None
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    parse_wrk(proc.stdout, result)


def run_python(port: int, target: Target, load: Load, seconds: int, result: Result) -> None:
    """Closed-loop keep-alive clients on threads; slower than wrk, same columns."""
    body = target.body.encode() or None
    headers = dict(target.headers)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    socket_errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        nonlocal socket_errors
        mine: list[float] = []
        seen: Counter[int] = Counter()
        failed = 0
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                conn.request(target.method, target.path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                failed += 1
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=5)
                time.sleep(0.01)  # no hot loop against a refusing port
                continue
            mine.append(time.perf_counter() - start)
            seen[resp.status] += 1
            if resp.will_close:
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=5)
        conn.close()
        with lock:
            latencies.extend(mine)
            statuses.update(seen)
            socket_errors += failed

    started = time.monotonic()
    workers = [threading.Thread(target=worker, daemon=True) for _ in range(load.connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=seconds + 15)
    elapsed = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[max(0, math.ceil(p * len(latencies)) - 1)] * 1000.0

    result.requests = len(latencies)
    result.rps = len(latencies) / elapsed if elapsed > 0 else 0.0
    result.p50_ms = pct(0.50)
    result.p99_ms = pct(0.99)
    result.non_2xx_3xx = sum(n for code, n in statuses.items() if not 200 <= code < 400)
    result.socket_errors = socket_errors
    result.statuses = {str(code): n for code, n in sorted(statuses.items())}


def ensure_wrk(mode: str) -> str | None:
    """The wrk binary, installing the Debian package when missing; None: use Python."""
    if mode == "python":
        return None
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    prefix: list[str] = []
    if apt and os.geteuid() != 0:
        prefix = ["sudo", "-n"] if shutil.which("sudo") else []
        if not prefix:
            apt = None
    if apt is None:
        if mode == "wrk":
            raise BenchError("wrk is missing and cannot be installed here (no apt-get as root)")
        log("wrk is missing and apt-get is unavailable: using the Python load generator")
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([*prefix, apt, "-q", "update"], [*prefix, apt, "-q", "install", "-y", "wrk"]):
        log("wrk is missing: running " + " ".join(cmd))
        try:
            proc = subprocess.run(
                cmd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sys.stderr,
                stderr=sys.stderr,
                timeout=APT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            proc = None
        if proc is None or proc.returncode != 0:
            if mode == "wrk":
                raise BenchError(f"'{' '.join(cmd)}' failed")
            log(f"'{' '.join(cmd)}' failed: using the Python load generator")
            return None
    return shutil.which("wrk")


def wrk_version(wrk: str) -> str:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        proc = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
        m = re.search(r"wrk (?:\S*/)?(\d\S*)", proc.stdout + proc.stderr)
        if m:
            return f"wrk {m.group(1)}"
    return "wrk"


# --- the run -------------------------------------------------------------------------------


@dataclass(slots=True)
class Setup:
    base: str
    issuer: str
    admin_id: str = ""
    admin_secret: str = ""
    username: str = "benchuser"


def check_preflight(target: Target, setup: Setup) -> str | None:
    """One request before the load: None when the answer looks right, else why not."""
    try:
        resp = requests.request(
            target.method,
            setup.base + target.path,
            data=target.body or None,
            headers=target.headers,
            timeout=HTTP_TIMEOUT_S,
        )
    except requests.RequestException as e:
        return f"{target.method} {target.path}: {e}"
    if resp.status_code != 200:
        return _describe(f"{target.method} {target.path}", resp)
    try:
        body = resp.json()
    except ValueError:
        return f"{target.method} {target.path}: not JSON: {resp.text[:200]}"
    expected: Callable[[dict[str, Any]], bool] = {
        "discovery": lambda b: b.get("issuer") == setup.issuer,
        "jwks": lambda b: bool(b.get("keys")),
        "token (client_credentials)": lambda b: "access_token" in b,
        "introspect": lambda b: b.get("active") is True,
        "userinfo": lambda b: "sub" in b,
    }[target.name]
    if not expected(body):
        return f"{target.method} {target.path}: unexpected answer {json.dumps(body)[:300]}"
    return None


def server_context(setup: Setup, workers: int, generator: str, load: Load) -> dict[str, Any]:
    jwks = requests.get(setup.base + "/jwks.json", timeout=HTTP_TIMEOUT_S).json()
    algs: list[str] = []
    for key in jwks.get("keys", []):
        alg = str(key.get("alg", key.get("kty", "?")))
        if key.get("kty") == "RSA" and "n" in key:
            n = base64.urlsafe_b64decode(key["n"] + "=" * (-len(key["n"]) % 4))
            alg += f" ({len(n) * 8}-bit)"
        elif "crv" in key:
            alg += f" ({key['crv']})"
        algs.append(alg)
    try:
        granian = importlib.metadata.version("granian")
    except importlib.metadata.PackageNotFoundError:
        granian = "?"
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "granian": granian,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "key_algorithm": ", ".join(algs) or "?",
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "granian_workers": workers,
        "database": "SQLite (embedded defaults)",
        "issuer": setup.issuer,
        "generator": generator,
        "threads": min(load.threads, load.connections)
        if generator.startswith("wrk")
        else load.connections,
        "connections": load.connections,
        "duration_s": load.duration,
        "warmup_s": load.warmup,
    }


def bench_one(
    target: Target, setup: Setup, load: Load, wrk: str | None, scripts: Path, port: int
) -> Result:
    result = Result(endpoint=target.name)
    problem = check_preflight(target, setup)
    if problem:
        result.notes.append("pre-flight request failed: " + problem)
        log(f"{target.name}: pre-flight request failed: {problem}")
    url = setup.base + target.path
    log(f"{target.name}: {load.warmup} s warm-up, {load.duration} s measured")
    if wrk is not None:
        script = write_lua(target, scripts)
        if load.warmup:
            run_wrk(wrk, url, script, load, load.warmup, Result(endpoint=target.name))
        run_wrk(wrk, url, script, load, load.duration, result)
    else:
        if load.warmup:
            run_python(port, target, load, load.warmup, Result(endpoint=target.name))
        run_python(port, target, load, load.duration, result)
    if result.non_2xx_3xx:
        bad = {c: n for c, n in result.statuses.items() if not 200 <= int(c) < 400}
        result.notes.append(f"non-2xx/3xx responses by status: {bad}")
    return result


def make_plan(setup: Setup, web: WebClient) -> list[tuple[str, Callable[[], Target]]]:
    """The endpoints in order; each factory mints its token just before its run."""
    admin_auth = basic_auth(setup.admin_id, setup.admin_secret)
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def discovery() -> Target:
        return Target("discovery", "GET", "/.well-known/openid-configuration")

    def jwks() -> Target:
        return Target("jwks", "GET", "/jwks.json")

    def token() -> Target:
        return Target(
            "token (client_credentials)",
            "POST",
            "/token",
            body="grant_type=client_credentials&scope=admin",
            headers={**form, "Authorization": admin_auth},
        )

    def introspect() -> Target:
        access = client_credentials_token(setup.base, setup.admin_id, setup.admin_secret)
        return Target(
            "introspect",
            "POST",
            "/introspect",
            body=urlencode({"token": access}),
            headers={**form, "Authorization": admin_auth},
        )

    def userinfo() -> Target:
        flow = BrowserFlow(setup.base, setup.issuer, web)
        access = flow.user_access_token(setup.username, BENCH_PASSWORD)
        return Target("userinfo", "GET", "/userinfo", headers={"Authorization": "Bearer " + access})

    return [
        ("discovery", discovery),
        ("jwks", jwks),
        ("token (client_credentials)", token),
        ("introspect", introspect),
        ("userinfo", userinfo),
    ]


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Result]]:
    load = Load(args.threads, args.connections, args.duration, args.warmup)
    idp = idp_executable()
    wrk = ensure_wrk(args.generator)
    generator = wrk_version(wrk) if wrk else "python (http.client threads)"
    port = args.port or free_port()
    issuer = f"http://localhost:{port}"
    setup = Setup(base=f"http://{HOST}:{port}", issuer=issuer)
    env = server_env(issuer)
    results: list[Result] = []

    workdir = Path(tempfile.mkdtemp(prefix="idp-bench-"))
    server = Server(idp, workdir, port, env, args.workers)
    try:
        server.start()
        server.wait_ready(setup.base + "/.well-known/openid-configuration")
        log(f"server ready on {setup.base} (issuer {issuer})")

        admin = run_cli(
            idp,
            workdir,
            env,
            [
                "clients",
                "create",
                "--name",
                "bench",
                "--grant-type",
                "client_credentials",
                "--scope",
                "admin",
                "--admin",
                "--redirect-uri",
                "http://localhost/cb",
            ],
        )
        setup.admin_id, setup.admin_secret = admin["client_id"], admin["client_secret"]
        web = run_cli(
            idp,
            workdir,
            env,
            [
                "clients",
                "create",
                "--name",
                "web",
                "--redirect-uri",
                f"{issuer}/cb",
            ],
        )
        web_client = WebClient(web["client_id"], web["client_secret"], f"{issuer}/cb")
        run_cli(
            idp,
            workdir,
            env,
            [
                "users",
                "create",
                "--username",
                setup.username,
                "--email",
                "bench@example.com",
                "--password-stdin",
            ],
            stdin=BENCH_PASSWORD + "\n",
        )
        context = server_context(setup, args.workers, generator, load)
        plan = make_plan(setup, web_client)
        for name, make_target in plan:
            if args.only and name.split()[0] not in args.only:
                continue
            try:
                target = make_target()  # mints the token just before its run
            except BenchError as e:
                log(f"{name}: skipped: {e}")
                results.append(Result(endpoint=name, skipped=str(e)))
                continue
            results.append(bench_one(target, setup, load, wrk, workdir, port))
        problems = server.problem_lines()
        context["server_log_errors"] = len(problems)
        if problems:
            shown = "\n".join("  | " + line for line in problems[-20:])
            log(f"the server logged {len(problems)} error line(s); the last ones:\n{shown}")
        return context, results
    finally:
        log("stopping the server and removing " + str(workdir))
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def render_table(context: dict[str, Any], results: list[Result]) -> str:
    cpus = context["cpu_count"]
    if context.get("cpus_usable") and context["cpus_usable"] != cpus:
        cpus = f"{cpus} ({context['cpus_usable']} usable)"
    lines = [
        f"granian {context['granian']} ({context['granian_workers']} worker), "
        f"{context['python']}, keys {context['key_algorithm']}, {cpus} CPUs, "
        f"{context['database']}",
        f"load: {context['generator']}, {context['threads']} threads, "
        f"{context['connections']} connections, {context['duration_s']} s per endpoint "
        f"after {context['warmup_s']} s warm-up, loopback (server and load share the CPUs)",
        "",
    ]
    header = f"{'endpoint':<28} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>8}"
    lines += [header, "-" * len(header)]
    notes: list[str] = []
    for r in results:
        if r.skipped:
            lines.append(f"{r.endpoint:<28} {'-':>9} {'-':>9} {'-':>9} {'skipped':>8}")
            notes.append(f"{r.endpoint}: skipped: {r.skipped}")
            continue
        lines.append(
            f"{r.endpoint:<28} {r.rps:>9.1f} {r.p50_ms:>9.2f} {r.p99_ms:>9.2f} {r.errors:>8}"
        )
        notes += [f"{r.endpoint}: {n}" for n in r.notes]
    if context.get("server_log_errors"):
        notes.append(
            f"server: {context['server_log_errors']} error line(s) in its log (shown on stderr)"
        )
    if notes:
        lines += ["", "notes:"] + [f"  {n}" for n in notes]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark the provider's hot endpoints under granian (embedded defaults)."
    )
    p.add_argument("--duration", type=int, default=10, help="measured seconds per endpoint")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per endpoint")
    p.add_argument("--connections", type=int, default=16, help="concurrent connections")
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--workers", type=int, default=1, help="granian workers (idp serve --workers)")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (auto: wrk, installed with apt-get if missing)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=("discovery", "jwks", "token", "introspect", "userinfo"),
        help="run only these endpoints",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = p.parse_args(argv)
    if not 1 <= args.duration <= MAX_DURATION_S:
        p.error(f"--duration must be 1..{MAX_DURATION_S}")
    if not 0 <= args.warmup <= 60:
        p.error("--warmup must be 0..60")
    if not 1 <= args.connections <= 1000 or not 1 <= args.threads <= 64:
        p.error("--connections must be 1..1000 and --threads 1..64")
    if not 1 <= args.workers <= 64:
        p.error("--workers must be 1..64")
    if args.port and not 1024 <= args.port < 65536:
        p.error("--port must be 1024..65535")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)
    try:
        context, results = run(args)
    except (BenchError, requests.RequestException, OSError) as e:
        log(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    if args.json:
        sys.stdout.write(
            json.dumps({"context": context, "results": [r.as_json() for r in results]}, indent=2)
            + "\n"
        )
    else:
        sys.stdout.write(render_table(context, results) + "\n")
    broken = any(r.skipped or any(n.startswith("pre-flight") for n in r.notes) for r in results)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
