"""yolact.errors: warning lines (#27 leftovers: they landed on a running progress bar's line)."""
import io
import sys

from tqdm import tqdm

from yolact.errors import warn


def test_warn_goes_above_a_running_progress_bar(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with tqdm(total=3, file=err, desc="images", ascii=True) as bar:
        bar.update(1)
        warn("a.jpg: unreadable")
        bar.update(1)
    text = err.getvalue()
    # the bar is cleared first (tqdm.write), so the warning starts its own line, whole
    assert "\nwarning: a.jpg: unreadable\n" in text.replace("\r", "\n")
    line = next(l for l in text.replace("\r", "\n").split("\n") if "warning" in l)
    assert line == "warning: a.jpg: unreadable"
