"""Named registries: one per configurable choice, each entry carrying its schema and checks.

A choice (an initializer, a data source, a model, ...) is one registered object plus, when
its config differs from its siblings', a schema dataclass and a ``check(cfg) -> problems``
function. :func:`embedlab.config.register_configs` stores the schemas of a registry with a
``group`` in Hydra's ConfigStore as ``schema/<group>/<name>``, so a YAML file can start from
one (``/schema/data/files@_here_``) and Hydra rejects a misspelled key at composition time.
(This module does not import Hydra: a loaded model needs neither Hydra nor Lightning.) :func:`embedlab.config.validate`
asks every registry for the problems of the composed config (:meth:`Registry.problems`).

Adding a choice is one decorated function (or class) plus one YAML file in the config group.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from embedlab.errors import ConfigError

T = TypeVar("T")
Check = Callable[[DictConfig], list[str]]


def schema_problems(key: str, node: Any, schema: type) -> list[str]:
    """Unknown keys and badly typed values of ``node`` (at config key ``key``) under ``schema``."""
    if node is None:
        return []
    if not isinstance(node, dict | DictConfig):
        return [f"{key}: expected a mapping, got {node!r}"]
    valid = sorted(f.name for f in dataclasses.fields(schema))
    problems = [f"{key}.{k}: unknown key; valid keys: {valid}" for k in node if k not in valid]
    if not problems:
        try:
            OmegaConf.merge(OmegaConf.structured(schema), node)
        except OmegaConfBaseException as exc:
            problems.append(f"{key}.{getattr(exc, 'key', '')}: {str(exc).splitlines()[0]}")
    return problems


@dataclass(frozen=True)
class Entry(Generic[T]):
    obj: T  # the builder: a function or class
    schema: type | None  # dataclass of the choice's config node (see Registry.node)
    check: Check | None  # problems of a composed config that chose this entry


class Registry(Generic[T]):
    """Maps a config name to an :class:`Entry`.

    ``key`` is the config key that selects a choice (``"data.source"``); ``node`` the config
    node an entry's schema describes (``"data"``; for initializers ``"embedding.init_args"``);
    ``group`` the config group whose YAML files start from the stored schemas (``"data"``);
    ``check`` problems of the group that hold whatever the choice (e.g. ``embedding.dim >= 1``).
    """

    def __init__(
        self,
        kind: str,
        key: str,
        node: str | None = None,
        group: str | None = None,
        check: Check | None = None,
    ) -> None:
        self.kind = kind  # human name, e.g. "initializer"
        self.key = key
        self.node = node
        self.group = group
        self.group_check = check
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, schema: type | None = None, check: Check | None = None
    ) -> Callable[[T], T]:
        """Decorator: ``@DATA_SOURCES.register("files", FilesDataConfig, check=files_problems)``."""

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(obj, schema, check)
            return obj

        return deco

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            raise ConfigError(
                [f"{self.key}: unknown {self.kind} {name!r}; choose one of {self.names()}"]
            )
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def schema(self, name: str) -> type | None:
        return self.entry(name).schema

    def problems(self, cfg: DictConfig) -> list[str]:
        """Everything wrong with the choice ``cfg`` makes here: name, schema, the entry's checks."""
        name = OmegaConf.select(cfg, self.key)
        entry = self._entries.get(name)
        problems: list[str] = []
        if entry is None:
            problems.append(
                f"{self.key}: unknown {self.kind} {name!r}; choose one of {self.names()}"
            )
        elif entry.schema is not None and self.node is not None:
            node = OmegaConf.select(cfg, self.node)
            typed = schema_problems(self.node, node, entry.schema)
            if typed:  # the checks below read the node's values: only once they are well typed
                return typed
        if self.group_check is not None:
            problems += self.group_check(cfg)
        if entry is not None and entry.check is not None:
            problems += entry.check(cfg)
        return problems

    def build_args(self, name: str, args: Any) -> dict[str, Any]:
        """``args`` merged over the schema defaults, as a plain dict."""
        schema = self.schema(name)
        if schema is None:
            return dict(args or {})
        merged = OmegaConf.merge(OmegaConf.structured(schema), args or {})
        return OmegaConf.to_container(merged, resolve=True, enum_to_str=True)  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def check_kwargs(key: str, target: Any, kwargs: dict[str, Any]) -> list[str]:
    """Return problems with ``kwargs`` for calling ``target`` (unknown names, with choices)."""
    import inspect

    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return []
    allowed = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return [
        f"{key}.{name}: not an argument of {getattr(target, '__name__', target)}; "
        f"valid: {sorted(allowed)}"
        for name in kwargs
        if name not in allowed
    ]
