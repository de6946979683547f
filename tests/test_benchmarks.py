"""Every script in benchmarks/ still imports against the package (scripts are run by hand, so
nothing else would notice an API they use going away)."""
import pytest

from conftest import BENCHMARKS, load_benchmark


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_benchmark_script_imports(path):
    module = load_benchmark(path.stem)
    assert callable(getattr(module, "main", None)), f"{path.name} has no main()"
