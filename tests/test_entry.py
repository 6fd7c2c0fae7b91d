"""The console scripts' lean Lightning import (start-up: embedlab.entry)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
{imports}
from lightning_utilities.core.imports import RequirementCache, package_available
import torchmetrics
from torchmetrics.utilities import imports as flags
print(sorted(m for m in ("scipy.signal", "transformers", "matplotlib.pyplot") if m in sys.modules))
# the flags that gated those imports keep their answer (BERTScore: "requires transformers")
gates = (flags._SCIPI_AVAILABLE, flags._TRANSFORMERS_GREATER_EQUAL_4_4, flags._MATPLOTLIB_AVAILABLE)
print(*(bool(g) for g in gates))
# checks made after the import see the packages that are there
print(package_available("scipy"), bool(RequirementCache("scipy")))
print(torchmetrics.package_available("scipy"), bool(RequirementCache("scipy>=1.0")))
"""
LEAN = "from embedlab.entry import import_lightning\nprint(import_lightning(), import_lightning())"


def probe(imports: str) -> list[str]:
    code = PROBE.format(imports=imports)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split("\n")


def test_lean_import_skips_torchmetrics_optional_modules():
    pytest.importorskip("scipy")
    first, *lines = probe(LEAN)
    assert first == "True False"  # the second call finds torchmetrics imported: no-op
    assert lines[:4] == ["[]", "False False False", "True True", "True True"]


def test_plain_import_keeps_torchmetrics_as_it_is():
    pytest.importorskip("scipy")
    lines = probe("import lightning.pytorch")
    assert "scipy.signal" in lines[0]  # torchmetrics imports it whenever scipy is installed
    assert lines[1].split()[0] == "True"


GC_PROBE = """
import gc
{before}
from embedlab.entry import import_lightning
import_lightning()
print(gc.isenabled(), gc.get_freeze_count() > 100_000)
"""


@pytest.mark.parametrize(
    ("before", "expected"),
    [("", "True True"), ("gc.disable()", "False False")],  # a caller's choice is left alone
)
def test_lean_import_freezes_what_it_built(before: str, expected: str):
    code = GC_PROBE.format(before=before)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == expected
