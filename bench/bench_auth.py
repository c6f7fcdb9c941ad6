"""Overhead of authentication on a read endpoint, on loopback (issue: access and sharing).

- auth_overhead: requests per second of `GET /api/datasets/{id}` (the built-in digits dataset,
  registered once) answered by a real `prunescope serve` with PRUNESCOPE_AUTH=on and an API
  token, against the same server with PRUNESCOPE_AUTH=off, both on the same data folder
  (SQLite) and running at the same time on two loopback ports (ratio = with auth / without;
  the target is >= 0.9). Every request carries the same `Authorization: Bearer` header, so
  the only difference is the server's setting: the token lookup (one indexed query in a
  worker thread) and the route policy.

The load comes from a separate process: a raw-socket HTTP/1.1 keep-alive client (asyncio,
CONNECTIONS connections, one request in flight on each), far cheaper per request than the
server, so it is not the bottleneck (its CPU share is printed). The two servers are loaded
in turn, in short slices (off/on, then on/off, ...) on connections kept open throughout.

The figure is requests per second of server CPU: the requests a server answered divided by
the CPU time its process used meanwhile (all its threads), i.e. the requests per second one
saturated core gives. On an idle machine that is the wall-clock rate (the server is
single-process and CPU-bound here); on a shared machine the wall-clock rate mostly says how
much of the CPU the server happened to get, so it is printed as well (median of the slices)
but it is not the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psutil  # noqa: E402
from _common import bench_line, start_server, stop_server, wait_ready  # noqa: E402

PAIRS = 20
SLICE_S = 0.5
WARMUP_S = 1.0  # per server before the slices, not counted (first requests, caches)
CONNECTIONS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ load client
async def _connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, stop_at: float
) -> int:
    """Send ``request`` over one keep-alive connection until ``stop_at``; the number of (200)
    answers."""
    done = 0
    while time.perf_counter() < stop_at:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if head[9:12] != b"200":
            raise RuntimeError(f"server answered {head[:200]!r}")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        done += 1
    return done


async def _drive(
    targets: dict[str, tuple[int, bytes, int]], pairs: int, slice_s: float, connections: int
) -> dict[str, list[tuple[float, float, float]]]:
    """After a warm-up of each (WARMUP_S, not counted), load each server in turn for
    ``slice_s`` seconds, ``pairs`` times each, alternating off/on then on/off; per slice:
    (requests/s, requests, server CPU seconds)."""
    conns = {
        auth: [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
        for auth, (port, _, _) in targets.items()
    }
    procs = {auth: psutil.Process(pid) for auth, (_, _, pid) in targets.items()}
    out: dict[str, list[tuple[float, float, float]]] = {auth: [] for auth in targets}

    async def one_slice(auth: str, seconds: float) -> tuple[float, float, float]:
        request = targets[auth][1]
        cpu0, t0 = sum(procs[auth].cpu_times()[:2]), time.perf_counter()
        counts = await asyncio.gather(
            *(_connection(r, w, request, t0 + seconds) for r, w in conns[auth])
        )
        wall = time.perf_counter() - t0  # until the last answer in flight came back
        cpu = sum(procs[auth].cpu_times()[:2]) - cpu0
        return sum(counts) / wall, sum(counts), cpu

    try:
        for auth in targets:  # warm-up, not counted: first requests, caches, the pool
            await one_slice(auth, WARMUP_S)
        for i in range(pairs):
            for auth in ("off", "on") if i % 2 == 0 else ("on", "off"):
                out[auth].append(await one_slice(auth, slice_s))
    finally:
        for pool in conns.values():
            for _, w in pool:
                w.close()
    return out


def client_main(jobs: mp.Queue, results: mp.Queue) -> None:  # type: ignore[type-arg]
    """Run the whole schedule (see _drive) in this separate process; answer its slices and
    the share of one core this client used."""
    targets, pairs, slice_s, connections = jobs.get()
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        slices = asyncio.run(_drive(targets, pairs, slice_s, connections))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        results.put(repr(exc))
        return
    results.put((slices, (time.process_time() - cpu0) / (time.perf_counter() - t0)))


# ------------------------------------------------------------------------------ servers
def create_token(data: Path) -> str:
    """Migrate the data folder's (new) database and add an API token to it."""
    from backend.api.security import create_token as make
    from backend.config import Settings
    from backend.db.session import dispose_engines, migrate, session_factory

    settings = Settings(data_dir=data, database_url="")  # SQLite there, whatever the env says
    migrate(settings.database_url)
    with session_factory(settings.database_url)() as session:
        _, secret = make(session, "bench_auth")
    dispose_engines()
    return secret


def _sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)  # run the finally blocks: no server outlives the benchmark


# --------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=PAIRS, help="slices per server")
    parser.add_argument("--slice", type=float, default=SLICE_S, help="seconds per slice")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _sigterm)

    t_start = time.perf_counter()
    ctx = mp.get_context("spawn")
    jobs: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    results: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    client = ctx.Process(target=client_main, args=(jobs, results), daemon=True)
    servers: dict[str, subprocess.Popen[bytes]] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        data = Path(tmp_dir) / "data"
        ports = {"off": free_port(), "on": free_port()}
        logs = {auth: Path(tmp_dir) / f"serve_auth_{auth}.log" for auth in ports}
        try:
            client.start()
            secret = create_token(data)  # the schema first, so both servers can start at once
            for auth, port in ports.items():
                servers[auth] = start_server(data, port, logs[auth], auth=auth)
            # each server registers a copy of digits, so both did the same work (imports,
            # heap) before the load; both then read the first one
            bearer = {"Authorization": f"Bearer {secret}"}
            ids = []
            for auth, port in ports.items():
                url = f"http://127.0.0.1:{port}/api"
                wait_ready(servers[auth], port, logs[auth])
                created = httpx.post(
                    f"{url}/datasets",
                    json={"builtin": "digits", "name": f"digits-auth-{auth}"},
                    headers=bearer,
                    timeout=120,
                )
                created.raise_for_status()
                ids.append(created.json()["id"])
            path = f"/api/datasets/{min(ids)}"
            print(f"# servers ready after {time.perf_counter() - t_start:.0f} s", flush=True)

            # both answer the same thing; without the token the auth-on server refuses
            bodies = {
                auth: httpx.get(f"http://127.0.0.1:{port}{path}", headers=bearer)
                for auth, port in ports.items()
            }
            for auth, resp in bodies.items():
                if resp.status_code != 200:
                    raise RuntimeError(f"auth {auth}: {resp.status_code} {resp.text}")
            if bodies["on"].content != bodies["off"].content:
                raise RuntimeError("the two servers answer differently")
            refused = httpx.get(f"http://127.0.0.1:{ports['on']}{path}").status_code
            if refused != 401:
                raise RuntimeError(f"the auth-on server answered {refused} without a token")

            targets = {
                auth: (
                    port,
                    (
                        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        f"Authorization: Bearer {secret}\r\nAccept: application/json\r\n\r\n"
                    ).encode(),
                    servers[auth].pid,
                )
                for auth, port in ports.items()
            }
            jobs.put((targets, args.pairs, args.slice, args.connections))
            answer = results.get(timeout=2 * args.pairs * (args.slice + 5) + 60)
            if isinstance(answer, str):
                raise RuntimeError(f"load client failed: {answer}")
            slices, client_cpu = answer
        finally:
            client.join(2)  # done once it answered; else stuck on a failed setup
            if client.is_alive():
                client.kill()
            for server in servers.values():
                stop_server(server)

    rates = {auth: [s[0] for s in rows] for auth, rows in slices.items()}
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    paired = statistics.median(a / b for a, b in zip(rates["on"], rates["off"], strict=True))
    # requests per second of server CPU: what one saturated core would give, whatever share
    # of the machine the server got (the totals over all slices; CPU times tick at 10 ms)
    per_cpu = {
        auth: sum(s[1] for s in rows) / sum(s[2] for s in rows) for auth, rows in slices.items()
    }
    print(f"# auth off req/s per slice: {[round(r) for r in rates['off']]}", flush=True)
    print(f"# auth on  req/s per slice: {[round(r) for r in rates['on']]}", flush=True)
    print(
        f"# median req/s: auth off {off:.0f}, auth on {on:.0f} (ratio {on / off:.3f}; median of "
        f"the paired slice ratios {paired:.3f})",
        flush=True,
    )
    print(
        f"# req per server-CPU-second: auth off {per_cpu['off']:.0f}, auth on "
        f"{per_cpu['on']:.0f} (ratio {per_cpu['on'] / per_cpu['off']:.3f})",
        flush=True,
    )
    print(
        f"# load client used {client_cpu:.0%} of a core; total wall time "
        f"{time.perf_counter() - t_start:.0f} s",
        flush=True,
    )
    ratio = per_cpu["on"] / per_cpu["off"]
    bench_line(
        "auth_overhead",
        ratio,
        "x",
        1.0,
        f"auth_off_req_per_s({per_cpu['off']:.0f}/s_per_server_core;auth_on={per_cpu['on']:.0f}"
        f"/s,GET_{path},{args.connections}conn,{args.pairs}x2x{args.slice:g}s_slices,"
        "target>=0.9)",
    )


if __name__ == "__main__":
    main()
