"""``make bench``: this provider beside node-oidc-provider, one core each.

For each database (SQLite, PostgreSQL), each scenario and each load (16 and
64 connections), the peer runs first and then this provider, on the same
core (``SERVER_CPU``), loaded from the other (``LOAD_CPU``) for the same
time after a warm-up; every answer is checked, and a run with any error is
void.  The table gives requests per second (sign-ins per second for the
sign-in scenario), p50 and p99 latency, errors, the share of its core each
side used, and our ratio.  Above it: the machine's RS256 and ES256 signing
floor and a bare Flask view's ceiling on the same core.

Scenarios:

* ``discovery``, ``jwks``: the documents every relying service fetches;
* ``client_credentials``: one signed JWT access token per request;
* ``introspection``: a user's access token, by the client it was issued to;
* ``userinfo``: the same token as a bearer;
* ``refresh``: rotating chains, one per connection (we sign an access
  token and an ID token; the peer's access token is opaque, so it signs one);
* ``sign_in``: authorization request, sign-in page, password (argon2id at
  the cost we ship, on both sides), consent remembered, code exchange.

Both providers sign with RS256, what the project ships; ``--algorithm
ES256`` makes both sign with ES256 instead, which shows what is left of a
refresh once its signatures cost little.

No test asserts a time: this shows where the time goes on one machine."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from bench import floors, scale
from bench.load import LOAD_CPU, Measurement, Repeated, request_env, run_flows, run_wrk
from bench.providers import BenchError, Ours, Peer, Provider, basic

SCENARIOS = (
    "discovery",
    "jwks",
    "client_credentials",
    "introspection",
    "userinfo",
    "refresh",
    "sign_in",
)
LOADS = (16, 64)


@dataclass
class Prepared:
    """Tokens minted just before a provider's runs (they live 15 minutes)."""

    access_token: str
    chains: list[str]


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def prepare(provider: Provider, chains: int, algorithm: str) -> Prepared:
    """One user access token, and ``chains`` refresh tokens of their own
    sign-ins; BenchError unless the first sign-in's ID token is signed with
    ``algorithm`` (a provider left on its default would measure the other)."""
    log(f"{provider.name}: {chains + 1} sign-ins for tokens")
    tokens = [provider.sign_in(requests.Session()) for _ in range(chains + 1)]
    header = json.loads(base64.urlsafe_b64decode(tokens[0]["id_token"].split(".")[0] + "=="))
    if header.get("alg") != algorithm:
        raise BenchError(f"{provider.name}: ID tokens signed with {header.get('alg')}")
    return Prepared(
        access_token=tokens[0]["access_token"], chains=[t["refresh_token"] for t in tokens[1:]]
    )


def repeated(provider: Provider, scenario: str, prepared: Prepared) -> Repeated:
    paths = provider.paths
    if scenario == "discovery":
        return Repeated("GET", paths["discovery"], expect='"issuer"')
    if scenario == "jwks":
        return Repeated("GET", paths["jwks"], expect='"keys"')
    if scenario == "client_credentials":
        return Repeated(
            "POST",
            paths["token"],
            headers={"Authorization": basic(*provider.admin)},
            body=f"grant_type=client_credentials&scope={provider.admin_scope}",
            expect='"access_token"',
        )
    if scenario == "introspection":
        return Repeated(
            "POST",
            paths["introspect"],
            headers={"Authorization": basic(*provider.web)},
            body=f"token={prepared.access_token}",
            expect='"active":true',
        )
    if scenario == "userinfo":
        return Repeated(
            "GET",
            paths["userinfo"],
            headers={"Authorization": f"Bearer {prepared.access_token}"},
            expect='"sub"',
        )
    raise ValueError(scenario)


def measure(
    provider: Provider,
    scenario: str,
    connections: int,
    seconds: int,
    prepared: Prepared,
) -> Measurement:
    if scenario == "sign_in":
        sessions = [requests.Session() for _ in range(connections)]
        return run_flows(
            flow=lambda i: provider.sign_in(sessions[i]) and None,
            connections=connections,
            seconds=seconds,
            server_groups=provider.groups,
        )
    if scenario == "refresh":
        chains, prepared.chains = prepared.chains[:connections], prepared.chains[connections:]
        if len(chains) < connections:
            raise BenchError(f"{provider.name}: not enough refresh chains prepared")
        tokens = Path(tempfile.mkstemp(prefix="bench-chains-")[1])
        tokens.write_text("\n".join(chains) + "\n")
        try:
            return run_wrk(
                base=provider.base,
                script="refresh.lua",
                env={
                    "BENCH_TOKENS": str(tokens),
                    "BENCH_PATH": provider.paths["token"],
                    "BENCH_HEADERS": f"Authorization: {basic(*provider.web)}",
                },
                connections=connections,
                seconds=seconds,
                server_groups=provider.groups,
                one_connection_per_thread=True,
            )
        finally:
            tokens.unlink()
    return run_wrk(
        base=provider.base,
        script="check.lua",
        env=request_env(repeated(provider, scenario, prepared)),
        connections=connections,
        seconds=seconds,
        server_groups=provider.groups,
    )


def measure_warm(
    provider: Provider,
    scenario: str,
    connections: int,
    args: argparse.Namespace,
    prepared: Prepared,
    profile: Path | None = None,
) -> Measurement:
    """A warm-up (thrown away), then the measured run -- recorded by py-spy
    into the flame graph ``profile`` when one is asked for."""
    if scenario != "refresh":  # a chain is spent by its run: no warm-up of its own
        measure(provider, scenario, connections, args.warmup, prepared)
    log(f"{provider.name}: {scenario} at {connections} connections")
    with flame_graph(provider, profile, args.duration):
        return measure(provider, scenario, connections, args.duration, prepared)


@contextlib.contextmanager
def flame_graph(provider: Provider, path: Path | None, seconds: int) -> Iterator[None]:
    if path is None or provider.process is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    recorder = subprocess.Popen(
        [spy, "record", "--pid", str(provider.process.pid), "--subprocesses", "--nonblocking",
         "--duration", str(seconds), "--rate", "200", "--output", str(path),
         "--format", "raw" if path.suffix == ".txt" else "flamegraph"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield
    finally:
        _, error = recorder.communicate(timeout=seconds + 60)
        if recorder.returncode != 0:
            log(f"py-spy could not record {path.name}: {error.decode(errors='replace')[-300:]}")


@contextlib.contextmanager
def ours(
    database: str, workdir: Path, threads: int | None, algorithm: str = "RS256"
) -> Iterator[Ours]:
    """This provider on SQLite, or on a throw-away PostgreSQL server (the test
    suite's, with fsync and synchronous commits as in production) pinned to
    the provider's core: the database's work counts as the provider's."""
    from tests.support.services import PostgresCluster

    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{workdir / 'idp.sqlite3'}"
        groups: set[int] = set()
        if database == "postgresql":
            cluster = stack.enter_context(PostgresCluster(durable=True, cpu=floors.SERVER_CPU))
            url = cluster.create_database("bench")
            groups.add(cluster.process_group)
        provider = Ours(workdir, url, threads, algorithm)
        try:
            provider.start()
            provider.groups |= groups
            yield provider
        finally:
            provider.stop()


def versions() -> dict[str, str]:
    def output(*argv: str) -> str:
        with contextlib.suppress(OSError):
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            return (done.stdout or done.stderr).strip() or "?"
        return "?"

    import granian

    peer = json.loads((Path(__file__).parent / "peer" / "package-lock.json").read_text())
    return {
        "python": platform.python_version(),
        "granian": granian.__version__,
        "node": output("node", "--version"),
        "oidc-provider": peer["packages"]["node_modules/oidc-provider"]["version"],
        "wrk": output("wrk", "-v").splitlines()[0] if output("wrk", "-v") else "?",
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        ),
        "cpus": str(os.cpu_count()),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    if (os.cpu_count() or 1) < 2:
        raise BenchError("needs two CPUs: one for the provider, one for the load")
    os.sched_setaffinity(0, {LOAD_CPU})
    report: dict[str, Any] = {
        "algorithm": args.algorithm,
        "versions": versions(),
        "floors": {},
        "databases": {},
        "stored": {},
        "forced_logout_seconds": {},
    }
    log("signing floor and bare Flask ceiling")
    report["floors"]["signatures_per_second"] = floors.signatures_per_second()
    report["floors"]["bare_flask"] = {
        str(c): asdict(floors.bare_flask(c, args.duration)) for c in args.connections
    }
    chains_needed = sum(args.connections) + 16 * len(args.stored)
    workdir = Path(tempfile.mkdtemp(prefix="idp-bench-"))
    peer = Peer(workdir, args.algorithm)
    try:
        peer.start()
        for database in args.databases:
            rows: list[dict[str, Any]] = []
            dbdir = workdir / database
            dbdir.mkdir()
            with ours(database, dbdir, args.server_threads, args.algorithm) as mine:
                peer_tokens = prepare(peer, chains_needed, args.algorithm)
                my_tokens = prepare(mine, chains_needed, args.algorithm)
                for scenario in args.scenarios:
                    for connections in args.connections:
                        theirs = measure_warm(peer, scenario, connections, args, peer_tokens)
                        profile = (
                            Path(args.profile)
                            / f"{database}-{scenario}-{connections}.{args.profile_format}"
                            if args.profile
                            else None
                        )
                        ours_ = measure_warm(mine, scenario, connections, args, my_tokens, profile)
                        rows.append(
                            {
                                "scenario": scenario,
                                "connections": connections,
                                "peer": asdict(theirs),
                                "ours": asdict(ours_),
                            }
                        )
                        print(render_row(rows[-1]), file=sys.stderr, flush=True)
                report["stored"][database] = stored_token_runs(mine, my_tokens, args)
            log(f"{database}: a forced logout of 1,000 sessions across 10 services")
            report["forced_logout_seconds"][database] = scale.forced_logout_seconds(database)
            report["databases"][database] = rows
    finally:
        peer.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def stored_token_runs(mine: Ours, prepared: Prepared, args: argparse.Namespace) -> list[Any]:
    """Introspection and refresh again, at 16 connections, with ever more
    tokens of other people stored."""
    runs = []
    for count in args.stored:
        log(f"{mine.name}: storing {count:,} refresh and access tokens")
        scale.fill_tokens(mine.database_url, count)
        for scenario in ("introspection", "refresh"):
            result = measure_warm(mine, scenario, 16, args, prepared)
            runs.append({"stored": count, "scenario": scenario, "ours": asdict(result)})
    return runs


# --- output ----------------------------------------------------------------------------------


def _cell(m: dict[str, Any]) -> str:
    if m["errors"] or not m["requests"]:
        return f"{'void':>9} {'':>7} {'':>7} {m['errors']:>5} {'':>5}"
    return (
        f"{m['per_second']:>9,.0f} {m['p50_ms']:>7.1f} {m['p99_ms']:>7.1f} "
        f"{m['errors']:>5} {m['server_cpu']:>5.2f}"
    )


def _ratio(row: dict[str, Any]) -> str:
    theirs, mine = row["peer"], row["ours"]
    if theirs["errors"] or mine["errors"] or not theirs["per_second"]:
        return "-"
    return f"{mine['per_second'] / theirs['per_second']:.2f}"


def render_row(row: dict[str, Any]) -> str:
    return (
        f"{row['scenario']:<19}{row['connections']:>4}  {_cell(row['peer'])}  "
        f"{_cell(row['ours'])}  {_ratio(row):>5}"
    )


HEADER = (
    f"{'scenario':<19}{'conn':>4}  {'peer r/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'err':>5} "
    f"{'cpu':>5}  {'ours r/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'err':>5} {'cpu':>5}  {'ratio':>5}"
)


def render(report: dict[str, Any]) -> str:
    v = report["versions"]
    lines = [
        f"machine: {v['cpu']}, {v['cpus']} CPUs; provider on CPU 0, load on CPU 1",
        f"versions: CPython {v['python']}, granian {v['granian']}, node {v['node']}, "
        f"oidc-provider {v['oidc-provider']}, {v['wrk']}",
    ]
    sig = report["floors"]["signatures_per_second"]
    lines.append(
        f"floor: RS256 {sig['RS256']:,.0f} signatures/s ({1e6 / sig['RS256']:.0f} µs), "
        f"ES256 {sig['ES256']:,.0f}/s ({1e6 / sig['ES256']:.0f} µs) on one core"
    )
    for connections, m in report["floors"]["bare_flask"].items():
        lines.append(
            f"ceiling: bare Flask under granian, {connections} connections: "
            f"{m['per_second']:,.0f} req/s, p99 {m['p99_ms']:.1f} ms"
        )
    for database, rows in report["databases"].items():
        lines += [
            "",
            f"== this provider on {database} (peer: node-oidc-provider, in memory;"
            f" both signing with {report['algorithm']})",
        ]
        lines += [HEADER, "-" * len(HEADER)]
        lines += [render_row(row) for row in rows]
        notes = {
            f"{row['scenario']} {row['connections']} {side}: {row[side]['note']}"
            for row in rows
            for side in ("peer", "ours")
            if row[side]["note"]
        }
        lines += [f"note: {n}" for n in sorted(notes)]
    for database, runs in report["stored"].items():
        if not runs:
            continue
        base = {
            row["scenario"]: row["ours"]["per_second"]
            for row in report["databases"].get(database, [])
            if row["connections"] == 16
        }
        lines += [
            "",
            f"== with tokens stored, {database}, 16 connections (ours; vs. the run above)",
        ]
        for run_ in runs:
            m = run_["ours"]
            reference = base.get(run_["scenario"]) or 0
            share = f"{m['per_second'] / reference:.2f}" if reference and not m["errors"] else "-"
            lines.append(
                f"{run_['scenario']:<19}{run_['stored']:>10,} stored  {_cell(m)}  {share:>5}"
            )
    for database, seconds in report["forced_logout_seconds"].items():
        lines.append(
            f"forced logout of 1,000 sessions across 10 services, {database}: "
            f"{seconds * 1000:,.0f} ms, committed"
        )
    lines += [
        "",
        "r/s: requests per second (sign_in: whole sign-ins per second); cpu: share of the",
        "provider's core used; ratio: ours / peer; void: the run had errors (not a figure).",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per run")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per run")
    parser.add_argument("--connections", type=int, nargs="+", default=list(LOADS))
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument(
        "--databases", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--stored",
        type=int,
        nargs="*",
        default=[10_000, 1_000_000],
        help="repeat introspection and refresh with this many tokens stored (none: skip)",
    )
    parser.add_argument(
        "--server-threads",
        type=int,
        help="request threads of idp serve (default: its own default)",
    )
    parser.add_argument(
        "--algorithm",
        choices=("RS256", "ES256"),
        default="RS256",
        help="signing algorithm of both providers (default: RS256, what the project ships)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record a flame graph of this provider (py-spy) during each measured run",
    )
    parser.add_argument(
        "--profile-format",
        choices=("svg", "txt"),
        default="svg",
        help="svg: flame graphs; txt: py-spy's collapsed stacks, for reading by tools",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    try:
        report = run(args)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    void = any(
        row[side]["errors"] or not row[side]["requests"]
        for rows in report["databases"].values()
        for row in rows
        for side in ("peer", "ours")
    )
    return 1 if void else 0


if __name__ == "__main__":
    sys.exit(main())
