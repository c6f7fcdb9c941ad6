"""A 2 GB checkpoint upload through a real `prunescope serve` on loopback: the server streams
it to the artifact store with bounded memory (peak RSS under 300 MB, sampled every 20 ms) and
hashes it on the way (the sha256 it reports equals one computed independently here)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest

from backend.storage import ArtifactStore

SIZE = 2 * 2**30
CHUNK = 2**20
BOUNDARY = "prunescopetestboundary"
LIMIT_MB = 300


def safetensors_head(total: int) -> bytes:
    """A valid safetensors header for one uint8 tensor filling a file of ``total`` bytes."""
    for pad in range(8):
        body = b""
        n = 0
        for _ in range(3):  # the tensor size depends on the header's own length
            meta = {"blob": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}
            body = json.dumps(meta).encode() + b" " * pad
            n = total - 8 - len(body)
        if (8 + len(body)) % 8 == 0:
            return struct.pack("<Q", len(body)) + body
    raise AssertionError("unreachable")


@pytest.mark.slow
def test_two_gigabyte_upload_keeps_server_memory_bounded(tmp_path):
    port = free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNESCOPE_")}
    env |= {
        "PRUNESCOPE_DATA_DIR": str(data_dir),
        "PRUNESCOPE_PORT": str(port),
        "PRUNESCOPE_WARM_EMBEDDINGS": "false",
        "PRUNESCOPE_MAX_UPLOAD_BYTES": str(3 * 2**30),
    }
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        proc = psutil.Process(server.pid)
        idle_rss = proc.memory_info().rss
        peak = [idle_rss]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        head = safetensors_head(SIZE)
        digest = hashlib.sha256()
        preamble = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="architecture"\r\n\r\nmlp'
            f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            'filename="huge.safetensors"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        closing = f"\r\n--{BOUNDARY}--\r\n".encode()

        def body():
            yield preamble
            digest.update(head)
            yield head
            block = bytes(range(256)) * (CHUNK // 256)
            sent = len(head)
            while sent < SIZE:
                piece = block[: min(CHUNK, SIZE - sent)]
                digest.update(piece)
                yield piece
                sent += len(piece)
            yield closing

        t0 = time.perf_counter()
        resp = httpx.post(
            f"{url}/models/upload",
            content=body(),
            headers={
                "content-type": f"multipart/form-data; boundary={BOUNDARY}",
                "content-length": str(len(preamble) + SIZE + len(closing)),
            },
            timeout=600,
        )
        elapsed = time.perf_counter() - t0
        stop.set()
        sampler.join()
        assert resp.status_code == 201, resp.text
        answer = resp.json()
        assert answer["size"] == SIZE and answer["sha256"] == digest.hexdigest()
        assert answer["format"] == "safetensors"
        peak_mb = peak[0] / 2**20
        print(
            f"2 GiB upload in {elapsed:.1f} s; server RSS idle {idle_rss / 2**20:.0f} MiB, "
            f"peak {peak_mb:.0f} MiB"
        )
        assert peak_mb < LIMIT_MB, f"server peak RSS {peak_mb:.0f} MiB"
        # the import job then refuses it (no mlp weights in it) and drops the raw bytes
        deadline = time.monotonic() + 120
        while (job := httpx.get(f"{url}/jobs/{answer['job_id']}").json())["status"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["status"] == "failed" and "missing" in job["error"], job
        assert not ArtifactStore(data_dir / "artifacts").exists(answer["sha256"])
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
