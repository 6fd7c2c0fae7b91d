"""A tiny named registry: one per configurable choice (initializers, data sources, models, ...).

Adding a choice is one decorated function (or class) plus one YAML file in the matching
config group. Looking up a name that does not exist raises a :class:`ConfigError` that
names the config key and lists the valid choices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from embedlab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a config name to an object (function or class) and, optionally, an args schema."""

    def __init__(self, kind: str, key: str, args_key: str | None = None) -> None:
        self.kind = kind  # human name, e.g. "initializer"
        self.key = key  # the config key that selects from it, e.g. "embedding.init"
        self.args_key = args_key or f"{key}_args"  # the key holding a choice's arguments
        self._items: dict[str, T] = {}
        self._schemas: dict[str, type | None] = {}

    def register(self, name: str, schema: type | None = None) -> Callable[[T], T]:
        """Decorator: ``@INITIALIZERS.register("normal", NormalArgs)``."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            self._schemas[name] = schema
            return obj

        return deco

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(
                [f"{self.key}: unknown {self.kind} {name!r}; choose one of {self.names()}"]
            )
        return self._items[name]

    def schema(self, name: str) -> type | None:
        self.get(name)
        return self._schemas[name]

    def check_args(self, name: str, args: Any) -> list[str]:
        """Problems with ``args`` for choice ``name`` under its schema dataclass (unknown keys, types)."""
        import dataclasses

        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        schema = self.schema(name)
        if schema is None or args is None:
            return []
        args_key = self.args_key
        valid = sorted(f.name for f in dataclasses.fields(schema))
        problems = [
            f"{args_key}.{k}: not an argument of {self.kind} {name!r}; valid: {valid}"
            for k in args
            if k not in valid
        ]
        if not problems:
            try:
                OmegaConf.merge(OmegaConf.structured(schema), args)
            except OmegaConfBaseException as exc:
                problems.append(f"{args_key}.{getattr(exc, 'key', '')}: {str(exc).splitlines()[0]}")
        return problems

    def build_args(self, name: str, args: Any) -> dict[str, Any]:
        """``args`` merged over the schema defaults, as a plain dict."""
        from omegaconf import OmegaConf

        schema = self.schema(name)
        if schema is None:
            return dict(args or {})
        merged = OmegaConf.merge(OmegaConf.structured(schema), args or {})
        return OmegaConf.to_container(merged, resolve=True, enum_to_str=True)  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

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
