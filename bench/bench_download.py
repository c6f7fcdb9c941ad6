"""Throughput of downloading a pruned model (issue 16 sect. 5: GET /api/models/{id}/download).

- download_throughput: MB/s of `GET /api/models/{id}/download?format=safetensors` of a
  ResNet-18-sized model (torchvision/resnet18, 10 classes: 11.2 M parameters, ~45 MB), pruned
  to 50% with torch.nn.utils.prune and registered directly in a fresh data folder's database
  and artifact store, answered by a real `prunescope serve` on loopback, against reading the
  same file (the stored safetensors export) from disk in the same run (ratio = download /
  disk read; the disk read is from the page cache, so it is close to memory bandwidth). Both
  figures are the best of ROUNDS alternating rounds (the medians are printed too).

The first request converts the checkpoint (torch, in a worker thread) and caches the file in
the artifact store; its time is printed but not counted. The counted requests are served from
the store: read in 4 MiB chunks in a worker thread and streamed (the first time a process
serves a file it also checks its sha256 on the way). The client is a plain blocking socket
reading into one preallocated buffer, so that it costs next to nothing per byte; the first
body is checked against its X-Content-SHA256.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import bench_line, start_server, stop_server, wait_ready  # noqa: E402

ROUNDS = 10  # counted downloads (and disk reads), alternating
CHUNK = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register_model(data: Path) -> tuple[int, int]:
    """A pruned ResNet-18-sized model in a fresh data folder, registered as the tests do
    (checkpoint into the store, row into the database); returns (model id, parameters)."""
    import torch
    from torch import nn
    from torch.nn.utils import prune

    from backend.config import Settings
    from backend.db.session import dispose_engines, migrate, session_factory
    from backend.db.tables import ModelRow
    from backend.storage import ArtifactStore
    from models.checkpoint import save_checkpoint
    from models.registry import UnknownNameError, create

    settings = Settings(data_dir=data, database_url="")  # SQLite there, whatever the env says
    migrate(settings.database_url)
    torch.manual_seed(0)
    try:
        architecture, kwargs = "torchvision/resnet18", {"num_classes": 10}
        model = create(architecture, **kwargs)
    except UnknownNameError:  # a registry without library architectures: same size, built in
        architecture = "mlp"
        kwargs = {"input_shape": [3, 32, 32], "num_classes": 10, "hidden": [3072, 640]}
        model = create(architecture, **kwargs)
    layers = [(m, "weight") for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    prune.global_unstructured(layers, pruning_method=prune.L1Unstructured, amount=0.5)
    n_params = sum(p.numel() for p in model.parameters())
    store = ArtifactStore(settings.artifact_location)
    with tempfile.TemporaryDirectory(dir=store.root) as tmp:
        path = Path(tmp) / "model.safetensors"
        save_checkpoint(model, architecture, kwargs, path)
        sha = store.put_file(path)
    with session_factory(settings.database_url)() as session:
        row = ModelRow(
            name="resnet18 global magnitude 50%",
            architecture=architecture,
            arch_kwargs=kwargs,
            pruning_method="global_magnitude",
            sparsity=0.5,
            n_params=n_params,
            n_nonzero=n_params // 2,
            checkpoint_sha=sha,
        )
        session.add(row)
        session.commit()
        ident = row.id
    dispose_engines()
    return ident, n_params


def download(port: int, path: str, buffer: bytearray) -> tuple[int, dict[str, str]]:
    """One GET over a fresh connection, the body read into ``buffer``; (bytes, headers)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            more = sock.recv(65536)
            if not more:
                raise RuntimeError(f"the server closed the connection: {head[:200]!r}")
            head += more
        raw, _, rest = head.partition(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        if lines[0].split()[1] != "200":
            raise RuntimeError(f"the server answered {lines[0]}: {rest[:300]!r}")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        length = int(headers["content-length"])
        if len(buffer) < length:
            buffer.extend(bytes(length - len(buffer)))
        view = memoryview(buffer)
        view[: len(rest)] = rest
        got = len(rest)
        while got < length:
            n = sock.recv_into(view[got:length])
            if n == 0:
                raise RuntimeError(f"short body: {got} of {length} bytes")
            got += n
        return length, headers


def read_file(path: Path, buffer: bytearray) -> int:
    """The baseline: the same bytes from disk, in the chunks the server reads them in."""
    got = 0
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view[got : got + CHUNK]):
            got += n
    return got


def _sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)  # run the finally blocks: no server outlives the benchmark


def main() -> None:
    signal.signal(signal.SIGTERM, _sigterm)
    with tempfile.TemporaryDirectory(prefix="bench_download_") as tmp:
        data = Path(tmp) / "data"
        model_id, n_params = register_model(data)
        port, log = free_port(), Path(tmp) / "server.log"
        server = start_server(data, port, log)
        try:
            wait_ready(server, port, log)
            route = f"/api/models/{model_id}/download?format=safetensors"
            buffer = bytearray()
            t0 = time.perf_counter()
            size, headers = download(port, route, buffer)
            first = time.perf_counter() - t0
            sha = headers["x-content-sha256"]
            if hashlib.sha256(memoryview(buffer)[:size]).hexdigest() != sha:
                raise RuntimeError("the body does not match its X-Content-SHA256")
            from backend.config import Settings
            from backend.storage import ArtifactStore

            location = Settings(data_dir=data, database_url="").artifact_location
            on_disk = ArtifactStore(location).path(sha)  # the cached export the server sent
            net, disk = [], []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                got, _ = download(port, route, buffer)
                net.append(got / (time.perf_counter() - t0) / 1e6)
                t0 = time.perf_counter()
                got = read_file(on_disk, buffer)
                disk.append(got / (time.perf_counter() - t0) / 1e6)
        finally:
            stop_server(server)
    print(
        f"# model {model_id}: {n_params / 1e6:.1f} M parameters, safetensors {size / 1e6:.1f} MB;"
        f" first request (conversion + download) {first:.2f} s; {ROUNDS} rounds, median"
        f" download {statistics.median(net):.0f} MB/s, disk read"
        f" {statistics.median(disk):.0f} MB/s; best of each below",
        flush=True,
    )
    # best of the rounds: on a shared machine the slower rounds mostly measure the neighbours
    value, base = max(net), max(disk)
    bench_line("download_throughput", value, "MB/s", base, "disk-read")


if __name__ == "__main__":
    main()
