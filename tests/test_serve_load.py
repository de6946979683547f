"""The load and fault runs of benchmarks/serve_load.py against a real `yolact serve` process
(slow: each starts servers). The fault list must all end as expected, the server must answer
the same afterwards and its memory come back near the baseline."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'yolact[serve]'")
pytest.importorskip("fastapi_offline", reason="needs the serve extra: pip install 'yolact[serve]'")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "serve_load.py"


@pytest.mark.slow
def test_faults(tmp_path):
    out = tmp_path / "faults.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--faults", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    assert len(results) >= 13 and all(r["ok"] for r in results), results


@pytest.mark.slow
def test_load_has_no_errors_and_batches(tmp_path):
    out = tmp_path / "load.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--clients", "4", "--seconds", "4", "--max-batch", "1,4",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    unbatched, batched = json.loads(out.read_text())
    assert unbatched["error_rate"] == 0 and batched["error_rate"] == 0
    assert unbatched["mean_batch"] == 1 and batched["mean_batch"] > 1.5
    assert unbatched["ok"] > 0 and batched["ok"] > 0


@pytest.mark.slow
def test_soak_short_run(tmp_path):
    # benchmarks/serve_soak.py end to end, a few seconds: paced mixed traffic, RSS samples, SIGTERM, exit 0
    out = tmp_path / "soak.json"
    script = SCRIPT.parent / "serve_soak.py"
    proc = subprocess.run([sys.executable, str(script), "--minutes", "0.1", "--clients", "2", "--rate", "4",
                           "--sample-s", "2", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["good_requests"] > 0 and report["bad_requests"] > 0
    assert report["good_not_200"] == 0 and report["bad_not_4xx"] == 0
    assert report["exit_status_after_sigterm"] == 0 and len(report["rss_mb"]) >= 3
    assert "rss=" in proc.stderr  # progress at each sample
