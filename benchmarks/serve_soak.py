"""Soak run of a real `yolact serve` process: mixed traffic for a given time, SIGTERM at the end.

    python benchmarks/serve_soak.py --minutes 30 --clients 4 --sample-s 60 --rate 4 --out soak.json

Traffic per client, in turn: /v1/segment (JPEG), /v1/segment?masks=polygons (PNG), /v1/overlay,
/v2/models/yolact/infer (BYTES), a bad body (must be 4xx), /metrics, a v2 body cut short (4xx). Reported: requests/s,
p50/p99 latency of good requests, good requests not answered 200, bad ones not answered 4xx,
RSS (MB) every --sample-s seconds, and the exit status after SIGTERM (must be 0). JSON on stdout
(and in --out). Each RSS sample is also printed to stderr as it is taken, so a long run shows its
progress. --rate paces the clients (requests/s, all clients together; 0: as fast as they can), so
a soak on a shared machine does not take it all.
"""
from __future__ import annotations

import argparse
import json
import signal
import struct
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import Server, test_image  # noqa: E402
from serve_helpers import jpeg_bytes, png_bytes  # noqa: E402


def v2_body(data: bytes):
    head = json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(data) + 4}}]}).encode()
    return head + struct.pack("<I", len(data)) + data, {"Inference-Header-Content-Length": str(len(head)),
                                                        "Content-Type": "application/octet-stream"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--sample-s", type=float, default=60.0, help="RSS sampling interval (s)")
    ap.add_argument("--weights", default=None, help="default: the packaged demo weights")
    ap.add_argument("--rate", type=float, default=0.0, help="target requests/s, all clients together (0: unpaced)")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the server")
    ap.add_argument("--out", default=None, help="also write the JSON report to this file")
    args = ap.parse_args(argv)

    img = test_image()
    jpg, png = jpeg_bytes(img), png_bytes(img)
    v2, v2_headers = v2_body(jpg)
    octet = {"Content-Type": "application/octet-stream"}
    mix = [("/v1/segment", jpg, octet, True), ("/v1/segment?masks=polygons", png, octet, True),
           ("/v1/overlay", jpg, octet, True), ("/v2/models/yolact/infer", v2, v2_headers, True),
           ("/v1/segment", b"not an image", {"Content-Type": "image/jpeg"}, False), ("/metrics", None, {}, True),
           ("/v2/models/yolact/infer", v2[:-100], v2_headers, False)]  # a short binary tensor: 400
    extra = ["--weights", args.weights] if args.weights else []
    latencies, failures, bad_not_4xx, count, bad_count = [], [], [], [0], [0]
    lock = threading.Lock()
    stop = threading.Event()
    with Server(*extra, "--drain-timeout", "30", threads=args.threads) as srv:
        def client(i):
            k = i
            period = args.clients / args.rate if args.rate > 0 else 0.0
            next_t = time.perf_counter() + i * period / max(args.clients, 1)
            while not stop.is_set():
                if period:
                    stop.wait(max(0.0, next_t - time.perf_counter()))
                    next_t += period
                    if stop.is_set():
                        break
                path, body, headers, good = mix[k % len(mix)]
                k += 1
                t0 = time.perf_counter()
                try:
                    status = srv.request("GET" if body is None else "POST", path, body or b"", headers)[0]
                except OSError as e:
                    status = repr(e)
                dt = time.perf_counter() - t0
                with lock:
                    count[0] += 1
                    if good:
                        (latencies.append(dt) if status == 200 else failures.append((path, status)))
                    else:
                        bad_count[0] += 1
                        if not (isinstance(status, int) and 400 <= status < 500):
                            bad_not_4xx.append(status)

        t_start = time.time()
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
        for t in threads:
            t.start()
        rss = [(0.0, round(srv.rss_mb, 1))]
        end = t_start + 60 * args.minutes
        while time.time() < end:
            time.sleep(min(args.sample_s, max(0.0, end - time.time())))
            rss.append((round(time.time() - t_start, 1), round(srv.rss_mb, 1)))
            with lock:
                progress = (count[0], len(failures), len(bad_not_4xx))
            print(f"t={rss[-1][0]:.0f}s rss={rss[-1][1]} MB requests={progress[0]} good_not_200={progress[1]} "
                  f"bad_not_4xx={progress[2]}", file=sys.stderr, flush=True)
        stop.set()
        for t in threads:
            t.join(120)
        elapsed = time.time() - t_start
        srv.proc.send_signal(signal.SIGTERM)
        exit_status = srv.proc.wait(60)
    lat = np.array(latencies) * 1000
    after_warm = [r for _, r in rss[1:]] or [rss[0][1]]
    report = {"minutes": args.minutes, "clients": args.clients, "rate": args.rate, "requests": count[0],
              "requests_per_s": round(count[0] / elapsed, 2),
              "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
              "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
              "good_requests": count[0] - bad_count[0], "bad_requests": bad_count[0],
              "good_not_200": len(failures), "bad_not_4xx": len(bad_not_4xx), "rss_mb": rss,
              "rss_spread_after_warmup_mb": round(max(after_warm) - min(after_warm), 1),
              "exit_status_after_sigterm": exit_status}
    report["failures_sample"] = [list(map(str, f)) for f in failures[:10]]
    report["bad_not_4xx_sample"] = [str(b) for b in bad_not_4xx[:10]]
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if not failures and not bad_not_4xx and exit_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
