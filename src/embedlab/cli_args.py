"""``key=value`` command lines for the small tools (``embedlab-predict``, ``embedlab-export``).

They take Hydra's syntax without Hydra's run folders: the arguments are merged into a typed
dataclass, so a misspelled key or a bad value is one line naming the key, and exit code 2.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from embedlab.errors import ConfigError, EmbedlabError
from embedlab.registry import schema_problems

T = TypeVar("T")


def parse(schema: type[T], argv: list[str], prog: str) -> T:
    """``argv`` (``key=value`` items) over the defaults of ``schema``; ``--help`` prints them."""
    if any(a in ("-h", "--help") for a in argv):
        print(f"usage: {prog} key=value ...\n\n{schema.__doc__}\nkeys (defaults):")
        for f in dataclasses.fields(schema):  # type: ignore[arg-type]
            default = f.default if f.default is not dataclasses.MISSING else "(required)"
            print(f"  {f.name}={default}")
        raise SystemExit(0)
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ConfigError([f"{a}: expected key=value (see {prog} --help)" for a in bad])
    # a lone "-" (stdin) is YAML for a list holding null: keep it a string
    argv = [f"{a.split('=', 1)[0]}='-'" if a.split("=", 1)[1] == "-" else a for a in argv]
    try:
        node = OmegaConf.from_dotlist(argv)
    except OmegaConfBaseException as exc:
        raise ConfigError([str(exc).splitlines()[0]]) from None
    problems = schema_problems("", node, schema)
    if problems:
        raise ConfigError([p.lstrip(".") for p in problems])
    merged = OmegaConf.merge(OmegaConf.structured(schema), node)
    missing = [k for k in merged if OmegaConf.is_missing(merged, k)]
    if missing:
        raise ConfigError([f"{k}: required ({k}=...)" for k in missing])
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def run(prog: str, fn: Any, schema: type, argv: list[str] | None = None) -> None:
    """Parse, call ``fn(args)``; a user-input error is one line on stderr and exit code 2."""
    try:
        fn(parse(schema, sys.argv[1:] if argv is None else argv, prog))
    except EmbedlabError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        raise SystemExit(2) from None
