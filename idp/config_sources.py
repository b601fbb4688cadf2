"""Where settings come from: the TOML file and ``IDP_<SECTION>_<KEY>``
variables, each value checked against and turned into its field's type.

A wrong type is a :class:`~idp.errors.ConfigError` naming the key, the file
or variable it came from and what the field takes; an unknown key of a known
section is one too (a misspelt key silently ignored is a setting that does
not hold).  ``idp.config.load`` puts the sections together."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from idp.errors import ConfigError

__all__ = ["build_section", "read_file", "reject_unknown_env"]


def read_file(path: str | Path) -> dict[str, Any]:
    """The TOML file's tables, or a ConfigError that says why not."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"configuration file {path} cannot be read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"configuration file {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:  # TOML is UTF-8 (tomllib decodes before it parses)
        raise ConfigError(
            f"configuration file {path} is not UTF-8 text (byte {e.start + 1})"
        ) from None


def build_section(
    section: str,
    cls: type[Any],
    given: dict[str, Any],
    environ: Mapping[str, str],
    path: str | Path | None,
) -> Any:
    """The section ``cls``: a variable overrides the file, the rest default."""
    values: dict[str, Any] = {}
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in given:
        if key not in known:
            raise ConfigError(
                f"unknown key {section}.{key} in {path}; "
                f"[{section}] takes: {', '.join(sorted(known))}"
            )
    for f in dataclasses.fields(cls):
        env_name = f"IDP_{section.upper()}_{f.name.upper()}"
        if env_name in environ:
            values[f.name] = _coerce_env(
                f"{section}.{f.name}", hints[f.name], environ[env_name], env_name
            )
        elif f.name in given:
            values[f.name] = _coerce_toml(
                f"{section}.{f.name}", hints[f.name], given[f.name], str(path)
            )
    return cls(**values)


def reject_unknown_env(environ: Mapping[str, str], sections: Mapping[str, type[Any]]) -> bool:
    """A misspelt key of a known section stops start-up instead of being ignored.

    A variable whose part after ``IDP_`` names no section is not a setting
    and is left alone: Kubernetes injects ``IDP_PORT`` and
    ``IDP_SERVICE_HOST`` for a Service named ``idp``, and scripts keep their
    own ``IDP_BIN``.  ``IDP_CONFIG`` names the file; ``IDP_TEST_*`` is the
    test suite's.  ``sections`` maps each section's name to its dataclass.
    Returns whether any variable set a setting."""
    configured = False
    for name in environ:
        if not name.startswith("IDP_") or name == "IDP_CONFIG" or name.startswith("IDP_TEST_"):
            continue
        rest = name[4:].lower()
        for section, section_type in sections.items():
            prefix = section + "_"
            if rest.startswith(prefix):
                key = rest[len(prefix) :]
                fields = {f.name for f in dataclasses.fields(section_type)}
                if key not in fields:
                    raise ConfigError(
                        f"unknown setting {name}: [{section}] takes {', '.join(sorted(fields))}"
                    )
                configured = True
                break
    return configured


def _describe(tp: Any) -> str:
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is str:
        return "a string"
    if get_origin(tp) is tuple:
        return "a list of strings"
    args = [a for a in get_args(tp) if a is not type(None)]
    if args:
        return _describe(args[0]) + " (or unset)"
    return str(tp)


def _coerce_toml(key: str, tp: Any, value: Any, source: str) -> Any:
    base = _unwrap_optional(tp)
    ok = (
        (base is bool and isinstance(value, bool))
        or (base is int and isinstance(value, int) and not isinstance(value, bool))
        or (base is str and isinstance(value, str))
        or (
            get_origin(base) is tuple
            and isinstance(value, list)
            and all(isinstance(v, str) for v in value)
        )
    )
    if not ok:
        raise ConfigError(f"{key} = {value!r} (from {source}): expected {_describe(base)}")
    for text in value if isinstance(value, list) else (value,):
        if isinstance(text, str) and "\0" in text:  # TOML can escape one: "\u0000"
            raise ConfigError(f"{key} (from {source}): a NUL character is not a setting")
    return tuple(value) if isinstance(value, list) else value


def _coerce_env(key: str, tp: Any, value: str, env_name: str) -> Any:
    base = _unwrap_optional(tp)
    where = f"(from {env_name})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 reach Python as lone surrogates, which no
        # driver, mailer or socket can encode later: say so now, and where.
        raise ConfigError(f"{key} {where}: the value is not UTF-8 text") from None
    if base is bool:
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{key} = {value!r} {where}: expected true or false")
    if base is int:
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(f"{key} = {value!r} {where}: expected an integer") from None
    if get_origin(base) is tuple:
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


def _unwrap_optional(tp: Any) -> Any:
    if get_origin(tp) in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0]
    return tp
