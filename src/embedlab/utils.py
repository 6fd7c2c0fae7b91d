"""Small helpers for the entry points."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

_ORDER = (
    "data",
    "tokenizer",
    "embedding",
    "pretrained",
    "model",
    "task",
    "optimizer",
    "scheduler",
    "trainer",
    "logger",
    "callbacks",
    "paths",
)


def print_config_tree(cfg: DictConfig, resolve: bool = True) -> None:
    """Print the composed config as a Rich tree, groups first, then top-level keys."""
    import rich
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    for group in [g for g in _ORDER if g in cfg] + [k for k in cfg if k not in _ORDER]:
        node = cfg[group]
        text = (
            OmegaConf.to_yaml(node, resolve=resolve) if isinstance(node, DictConfig) else str(node)
        )
        tree.add(f"[bold]{group}[/bold]").add(Syntax(text, "yaml", theme="ansi_dark"))
    rich.print(tree)
