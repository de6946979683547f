"""Load and fault runs against a real `yolact serve` process on localhost.

    python benchmarks/serve_load.py --clients 8 --seconds 20 --max-batch 1,8
    python benchmarks/serve_load.py --faults

Load: N clients, each on its own keep-alive connection, POST one image again and again for T
seconds. Reported per --max-batch setting: throughput, p50/p95/p99 latency, error rate, mean
batch size (from /v1/health) and the server's resident memory before and after.

Faults: a client that disconnects mid-upload, malformed multipart, a truncated JPEG, 1x1 and
20000x20000 PNGs, random bytes, wrong content types, and 200 concurrent requests against a queue
of 8. Afterwards the server must give the same answer as before and its memory must be back
near the baseline. Exit status 1 if any fault has the wrong outcome.

Everything is bounded: every request has a timeout, the server is killed at the end.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve_helpers import bomb_png, jpeg_bytes, multipart, png_bytes  # noqa: E402

TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """`yolact serve` in a subprocess; stopped on exit."""

    def __init__(self, *args: str, threads: Optional[int] = None):
        self.port = free_port()
        env = dict(os.environ)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        self.proc = subprocess.Popen([sys.executable, "-m", "yolact", "serve", "--port", str(self.port),
                                      "--log-level", "warning", *args], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stdout.read()}")
            try:
                if self.request("GET", "/v1/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("server did not start in 120 s")
            time.sleep(0.2)

    def request(self, method: str, path: str, body: bytes = b"", headers: Optional[Dict] = None,
                timeout: float = TIMEOUT, conn: Optional[http.client.HTTPConnection] = None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            if conn is None:
                c.close()

    @property
    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def test_image(size=(480, 640)) -> np.ndarray:
    from yolact.data.synth import make_image
    img, _ = make_image(np.random.default_rng(0), *size, style="simple", max_objects=4)
    return img


# ---------------------------------------------------------------- load
def load_run(server: Server, data: bytes, clients: int, seconds: float) -> Dict:
    latencies: List[float] = []
    errors: Dict[int, int] = {}
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                status, _, _ = server.request("POST", "/v1/segment?masks=rle", data, conn=conn)
            except OSError:
                status = -1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
            dt = time.perf_counter() - t0
            with lock:
                if status == 200:
                    latencies.append(dt)
                else:
                    errors[status] = errors.get(status, 0) + 1
        conn.close()

    before = json.loads(server.request("GET", "/v1/health")[2])
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = json.loads(server.request("GET", "/v1/health")[2])
    lat = np.array(latencies) * 1000
    n_err = sum(errors.values())
    batches = after["batches"] - before["batches"]
    return {"requests": len(latencies) + n_err, "ok": len(latencies), "errors": errors,
            "throughput": len(latencies) / wall, "error_rate": n_err / max(len(latencies) + n_err, 1),
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p95_ms": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
            "mean_batch": (after["served"] - before["served"]) / max(batches, 1)}


def cmd_load(args) -> List[Dict]:
    data = jpeg_bytes(test_image())
    rows = []
    for mb in [int(v) for v in args.max_batch.split(",")]:
        extra = ["--weights", args.weights] if args.weights else []
        with Server("--max-batch", str(mb), "--max-wait-ms", str(args.max_wait_ms), "--max-queue",
                    str(max(64, 2 * args.clients)), *extra, threads=args.threads) as srv:
            load_run(srv, data, args.clients, min(3.0, args.seconds))  # warm-up
            rss0 = srv.rss_mb
            r = load_run(srv, data, args.clients, args.seconds)
            r.update(max_batch=mb, clients=args.clients, seconds=args.seconds, rss_start_mb=rss0, rss_end_mb=srv.rss_mb)
            rows.append(r)
    print(f"{'max_batch':>9} {'clients':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'errors':>7} {'batch':>6} {'RSS MB start->end':>18}")
    for r in rows:
        print(f"{r['max_batch']:>9} {r['clients']:>7} {r['requests']:>8} {r['throughput']:7.2f} {r['p50_ms']:7.0f} "
              f"{r['p95_ms']:7.0f} {r['p99_ms']:7.0f} {100 * r['error_rate']:6.1f}% {r['mean_batch']:6.2f} "
              f"{r['rss_start_mb']:8.0f} -> {r['rss_end_mb']:.0f}")
    if len(rows) > 1:
        print(f"throughput max_batch {rows[-1]['max_batch']} / max_batch {rows[0]['max_batch']}: "
              f"{rows[-1]['throughput'] / rows[0]['throughput']:.2f}x")
    return rows


# ---------------------------------------------------------------- faults
def disconnect_mid_upload(srv: Server, data: bytes) -> str:
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"POST /v1/segment HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
              + f"Content-Length: {len(data)}\r\n\r\n".encode() + data[: len(data) // 3])
    time.sleep(0.2)
    s.close()
    return "closed"


def queue_flood(srv: Server, data: bytes, n: int = 200) -> Dict:
    codes: Dict[int, int] = {}
    retry_after = []
    lock = threading.Lock()

    def one():
        try:
            status, headers, _ = srv.request("POST", "/v1/segment?masks=none", data)
        except OSError:
            status, headers = -1, {}
        with lock:
            codes[status] = codes.get(status, 0) + 1
            if status == 503:
                retry_after.append(headers.get("retry-after"))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"codes": codes, "retry_after_all_set": all(v == "1" for v in retry_after)}


def cmd_faults(args) -> List[Dict]:
    img = test_image()
    jpg = jpeg_bytes(img)
    rng = np.random.default_rng(0)
    extra = ["--weights", args.weights] if args.weights else []
    results = []
    with Server("--max-queue", "8", "--max-batch", "4", *extra, threads=args.threads) as srv:
        ok0 = srv.request("POST", "/v1/segment?masks=rle", jpg)
        assert ok0[0] == 200, ok0
        reference = json.loads(ok0[2])["detections"]
        for _ in range(3):  # warm
            srv.request("POST", "/v1/segment?masks=rle", jpg)
        rss0 = srv.rss_mb

        def check(name, expect, call):
            t0 = time.perf_counter()
            try:
                status, headers, body = call()
                try:
                    msg = json.loads(body)["error"]["message"] if status != 200 else "ok"
                except (ValueError, KeyError, TypeError):
                    msg = body[:80].decode("latin-1") if isinstance(body, bytes) else str(body)
                outcome = f"{status} {msg}"
                good = status in expect and b"Traceback" not in body
            except OSError as e:
                outcome, good = f"connection error: {e}", False
            results.append({"fault": name, "outcome": outcome, "ok": good,
                            "ms": round(1000 * (time.perf_counter() - t0))})

        mp_body, mp_type = multipart(jpg)
        check("client disconnects mid-upload", {200}, lambda: (disconnect_mid_upload(srv, jpg),
                                                             srv.request("GET", "/v1/health"))[1])
        check("malformed multipart (cut inside the part)", {400},
              lambda: srv.request("POST", "/v1/segment", mp_body[: len(mp_body) // 2], {"Content-Type": mp_type}))
        check("multipart without boundary", {400},
              lambda: srv.request("POST", "/v1/segment", mp_body, {"Content-Type": "multipart/form-data"}))
        check("truncated JPEG", {400}, lambda: srv.request("POST", "/v1/segment", jpg[: len(jpg) // 2]))
        check("1x1 PNG", {200}, lambda: srv.request("POST", "/v1/segment", png_bytes(np.zeros((1, 1, 3), np.uint8))))
        check("20000x20000 PNG (decompression bomb)", {413}, lambda: srv.request("POST", "/v1/segment", bomb_png()))
        check("random bytes", {415}, lambda: srv.request("POST", "/v1/segment", rng.bytes(50_000)))
        check("JPEG sent as application/json", {200},
              lambda: srv.request("POST", "/v1/segment", jpg, {"Content-Type": "application/json"}))
        check("random bytes sent as image/png", {415},
              lambda: srv.request("POST", "/v1/segment", rng.bytes(5000), {"Content-Type": "image/png"}))
        check("upload over the size limit (25 MB)", {413}, lambda: srv.request("POST", "/v1/segment", b"\0" * 25_000_000))
        flood = queue_flood(srv, jpg)
        codes = flood["codes"]
        results.append({"fault": "200 concurrent requests, queue of 8", "outcome": f"status counts {codes}, "
                        f"Retry-After on every 503: {flood['retry_after_all_set']}",
                        "ok": set(codes) <= {200, 503} and codes.get(503, 0) > 0 and codes.get(200, 0) > 0
                        and flood["retry_after_all_set"]})
        time.sleep(1.0)
        after = srv.request("POST", "/v1/segment?masks=rle", jpg)
        same = after[0] == 200 and json.loads(after[2])["detections"] == reference
        rss1 = srv.rss_mb
        results.append({"fault": "afterwards: the same image", "outcome": f"{after[0]}, identical detections: {same}",
                        "ok": same})
        results.append({"fault": "afterwards: resident memory", "outcome": f"{rss0:.0f} MB -> {rss1:.0f} MB "
                        f"({rss1 - rss0:+.0f} MB)", "ok": rss1 - rss0 < args.max_rss_growth_mb,
                        "rss_before_mb": rss0, "rss_after_mb": rss1})
    width = max(len(r["fault"]) for r in results)
    for r in results:
        print(f"{'ok ' if r['ok'] else 'BAD'} {r['fault']:<{width}}  {r['outcome']}")
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="default: the built-in demo model")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--max-batch", default="1,8", help="comma-separated settings to compare")
    ap.add_argument("--max-wait-ms", type=float, default=10)
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the server")
    ap.add_argument("--faults", action="store_true", help="run the fault list instead of the load")
    ap.add_argument("--max-rss-growth-mb", type=float, default=150)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    out = cmd_faults(args) if args.faults else cmd_load(args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0 if not args.faults or all(r["ok"] for r in out) else 1


if __name__ == "__main__":
    sys.exit(main())
