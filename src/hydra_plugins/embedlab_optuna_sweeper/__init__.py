"""embedlab's Optuna sweeper for Hydra (``hydra/sweeper=embedlab_optuna``, picked by
``sweep=optuna``): a persistent study that resumes, parallel trials through any Hydra launcher,
and pruning fed by the trials themselves (``embedlab.callbacks.optuna_pruning``).

Hydra finds it because ``hydra_plugins`` is a namespace package: this folder ships in the
embedlab wheel (pyproject ``[tool.hatch.build.targets.wheel] packages``) and an editable install
puts ``src/`` on the path. ``config.py`` registers the configs when Hydra scans plugins;
``_impl.py`` (skipped by the scan: leading underscore) imports Optuna only when a sweep runs.
"""
