"""Run folders and their lock (yolact.runs)."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from yolact.cli import main
from yolact.errors import YolactError
from yolact.runs import LOCK_NAME, run_lock

pytest.importorskip("fcntl", reason="the run lock uses flock (not on Windows)")

HOLDER = textwrap.dedent("""
    import sys
    from yolact.runs import run_lock
    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()   # until the test closes stdin (or kills this process)
""")


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/out."""
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert child.stdout.readline().strip() == "locked"
    yield out, child
    if child.poll() is None:
        child.kill()
    child.wait()


def test_a_second_process_is_stopped_naming_folder_and_pid(holder):
    out, child = holder
    with pytest.raises(YolactError, match=rf"^{out}: another yolact run \(pid {child.pid}\) is writing"):
        with run_lock(out):
            pass
    child.stdin.close()  # the holder ends normally: its lock file goes, and the folder is free
    assert child.wait() == 0 and not (out / LOCK_NAME).exists()
    with run_lock(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert not (out / LOCK_NAME).exists()


def test_a_killed_holder_leaves_no_stale_lock(holder):
    out, child = holder
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert (out / LOCK_NAME).exists()  # the file stays, its lock went with the process
    with run_lock(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())


@pytest.mark.parametrize("verb", [["train", "--train-ann", "a.json", "--train-images", "imgs"],
                                  ["predict", "--weights", "demo", "x.jpg", "--save-json", "--resume"]])
def test_cli_refuses_a_folder_another_run_writes_into(holder, verb, capsys):
    """New-user report: two runs writing into one folder at once were not prevented."""
    out, child = holder
    assert main([*verb, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"yolact: error: {out}: another yolact run (pid {child.pid}) is writing into this folder; "
                   "wait for it to end, or give another --out"]
