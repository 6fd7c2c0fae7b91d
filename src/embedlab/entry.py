"""Console-script entry points that import Lightning lean before anything else.

Lightning imports torchmetrics whole, and torchmetrics imports at module level every optional
package it finds installed, for metrics no embedlab run computes: ``scipy.signal`` (its audio
metrics, 0.64 s), ``transformers`` (BERTScore and InfoLM, 0.67 s with the ``hf`` extra) and
``matplotlib.pyplot`` (``Metric.plot``, 0.26 s). Measured with ``python -X importtime``, 2
cores: ``import embedlab.train`` took 4.4-4.65 s, 2.3-2.4 s without them, of a 4.5 s start-up to
the first training step (issue 9's target: 4 s). :func:`import_lightning` imports Lightning
while torchmetrics' availability checks (lightning_utilities' ``package_available`` and
``RequirementCache``) answer "not installed" for those three packages only, so torchmetrics
takes the path it takes where they are absent. Only ``embedlab-train`` and ``embedlab-eval`` do
this: ``import embedlab`` and ``embedlab.train.train`` (tests, notebooks, sweepers' workers)
leave torchmetrics as it is.

The import also runs without Python's cyclic garbage collector, and what it built is then set
aside for good (``gc.freeze``): its ~500k long-lived objects made every full collection walk them
all to find next to nothing. Measured with ``gc.callbacks`` on a default ``embedlab-train`` run
(2 cores, a machine ~1.5x slower than quiet): collections took 1.09 s, 0.87 s of it in six full
ones that freed 274 objects; now 0.09 s. The whole command took 4.6-5.1 s instead of 5.3-6.5 s
(four alternating pairs), peak RSS 2-14 MB more (the few cycles the import left behind).
"""

from __future__ import annotations

import gc
import sys

# what torchmetrics imports at module level and no embedlab run uses
LEAN_SKIPPED = frozenset({"scipy", "transformers", "matplotlib"})


def import_lightning(skipped: frozenset[str] = LEAN_SKIPPED) -> bool:
    """Import ``lightning.pytorch`` without torchmetrics' ``skipped`` optional packages, and
    without the garbage collector (then ``gc.freeze`` and the collector back on, where it was).

    Returns False (and changes nothing) when torchmetrics is already imported: its flags are
    then set for this process. Each flag torchmetrics reads during the import caches its
    answer, so torchmetrics stays consistent afterwards (its BERTScore says transformers is
    missing instead of failing); other packages' checks of these names run unchanged once the
    import is done.
    """
    if "torchmetrics" in sys.modules:
        return False
    from lightning_utilities.core import imports
    from packaging.requirements import Requirement

    package_available = imports.package_available
    check_available = imports.RequirementCache._check_available

    def lean_package_available(name: str) -> bool:
        if window_open and name in skipped:
            return False
        return package_available(name)

    def lean_check_available(self: imports.RequirementCache) -> None:
        fresh = window_open and not hasattr(self, "available") and self.requirement
        if fresh and Requirement(self.requirement).name in skipped:
            self.available = False
            self.message = f"{self.requirement!r} skipped by embedlab's lean import"
            return
        check_available(self)

    window_open = True
    imports.package_available = lean_package_available
    imports.RequirementCache._check_available = lean_check_available
    collecting = gc.isenabled()
    gc.disable()
    try:
        import lightning.pytorch  # noqa: F401
    finally:
        window_open = False
        imports.package_available = package_available
        imports.RequirementCache._check_available = check_available
        if collecting:
            gc.freeze()
            gc.enable()
    return True


def train() -> None:
    """``embedlab-train``: :func:`embedlab.train.cli` after a lean Lightning import."""
    import_lightning()
    from embedlab.train import cli

    cli()


def evaluate() -> None:
    """``embedlab-eval``: :func:`embedlab.evaluate.main` after a lean Lightning import."""
    import_lightning()
    from embedlab.evaluate import main

    main()
