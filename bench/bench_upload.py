"""Upload throughput through the REST API on loopback (issue 7).

- upload_throughput: a 1 GiB checkpoint file on disk posted (streamed multipart) to
  `POST /api/models/upload` of a real `prunescope serve`, in MB/s until the answer (the file
  is then stored in the artifact store and hashed), against copying the same file on disk
  with shutil.copyfile (ratio = API / disk copy).
- upload_peak_rss: the server process's peak RSS during that upload (sampled every 20 ms),
  against its idle RSS just before.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import psutil  # noqa: E402
from _common import bench_line  # noqa: E402

SIZE = 2**30
CHUNK = 2**20
BOUNDARY = "prunescopebenchboundary"


def write_checkpoint(path: Path) -> None:
    """A 1 GiB safetensors file (one uint8 tensor) written with random-ish content."""
    body = b""
    n = 0
    for _ in range(3):
        meta = {"blob": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}
        body = json.dumps(meta).encode()
        n = SIZE - 8 - len(body)
    block = os.urandom(CHUNK)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(body)) + body)
        left = n
        while left:
            fh.write(block[: min(CHUNK, left)])
            left -= min(CHUNK, left)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        src = tmp / "model.safetensors"
        write_checkpoint(src)
        t0 = time.perf_counter()
        shutil.copyfile(src, tmp / "copy.safetensors")
        os.sync()
        disk = SIZE / (time.perf_counter() - t0) / 1e6
        (tmp / "copy.safetensors").unlink()

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNESCOPE_")}
        env |= {
            "PRUNESCOPE_DATA_DIR": str(tmp / "data"),
            "PRUNESCOPE_PORT": str(port),
            "PRUNESCOPE_WARM_EMBEDDINGS": "false",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
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
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("server did not start")
                time.sleep(0.2)
            proc = psutil.Process(server.pid)
            idle = proc.memory_info().rss
            peak = [idle]
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], proc.memory_info().rss)
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            preamble = (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="architecture"\r\n\r\n'
                f'mlp\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                'filename="model.safetensors"\r\n\r\n'
            ).encode()
            closing = f"\r\n--{BOUNDARY}--\r\n".encode()

            def body():
                yield preamble
                with open(src, "rb") as fh:
                    while chunk := fh.read(CHUNK):
                        yield chunk
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
            api = SIZE / (time.perf_counter() - t0) / 1e6
            stop.set()
            sampler.join()
            resp.raise_for_status()
        finally:
            server.terminate()
            server.wait(20)
    bench_line("upload_throughput", api, "MB/s", disk, f"disk_copy_same_1GiB_file({disk:.0f}MB/s)")
    bench_line(
        "upload_peak_rss",
        peak[0] / 2**20,
        "MiB",
        idle / 2**20,
        f"idle_server_rss({idle / 2**20:.0f}MiB)",
    )


if __name__ == "__main__":
    main()
