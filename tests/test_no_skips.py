"""``make test`` runs pytest with ``--no-skips``: a skipped test fails the run and is listed with its
reason; an expected failure (xfail) runs and does not."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = """
import pytest

def test_runs():
    pass

def test_needs_a_service():
    pytest.skip("the service is not running")

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_known_bug():
    assert False
"""


def run_pytest(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp / "test_sample.py").write_text(SAMPLE)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:django", "-p", "no:xdist", str(tmp), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skipped_test_fails_the_run_with_its_reason_only_under_no_skips():
    # Inside the repository, so that its root conftest.py (which defines --no-skips) is loaded.
    (ROOT / "var").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "var", prefix="no-skips-") as tmp:
        strict = run_pytest(Path(tmp), "--no-skips", "-k", "runs or needs_a_service")
        assert strict.returncode == 1, strict.stdout
        assert "skipped tests fail this run (--no-skips)" in strict.stdout
        assert "test_sample.py::test_needs_a_service: the service is not running" in strict.stdout

        assert run_pytest(Path(tmp)).returncode == 0  # a developer's local run may skip
        xfail = run_pytest(Path(tmp), "--no-skips", "-k", "runs or known_bug")
        assert xfail.returncode == 0, xfail.stdout
        assert "1 xfailed" in xfail.stdout
