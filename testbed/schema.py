"""Tiny helpers to read nested YAML/dict input with errors that name file and field path.

We keep this hand-written rather than pulling in a schema library: recipes are small, and the one thing we need
that generic validators do poorly is an error of exactly one line naming `file: field.path: expected …`.
"""

from __future__ import annotations

from typing import Any, Iterable

from .errors import QkdbedError, ValidationError

_MISSING = object()


class Reader:
    """A view of one mapping inside a document, remembering where it came from."""

    def __init__(self, data: Any, where: str, path: str = ""):
        if not isinstance(data, dict):
            raise ValidationError(where, path or "(top level)", "a mapping", data)
        self.data, self.where, self.path = data, where, path
        self._used: set[str] = set()

    def _p(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, expected: str, got: Any = None) -> ValidationError:
        return ValidationError(self.where, self._p(key), expected, got)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        self._used.add(key)
        if key not in self.data:
            if default is _MISSING:
                raise ValidationError(self.where, self._p(key), "a value (field is required)")
            return default
        return self.data[key]

    def str(self, key: str, default: Any = _MISSING, choices: Iterable[str] | None = None) -> str:
        v = self.raw(key, default)
        if not isinstance(v, str):
            raise self.fail(key, "a string", v)
        if choices is not None:
            choices = list(choices)
            if v not in choices:
                raise self.fail(key, "one of " + ", ".join(choices), v)
        return v

    def num(self, key: str, default: Any = _MISSING, *, min: float | None = None, max: float | None = None,
            strict_min: bool = False) -> float:
        v = self.raw(key, default)
        if isinstance(v, str):  # PyYAML (YAML 1.1) reads `1.0e9` as a string; accept it as the number it means
            try:
                v = float(v)
            except ValueError:
                raise self.fail(key, "a number", v) from None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(key, "a number", v)
        v = float(v)
        if min is not None and (v < min or (strict_min and v == min)):
            raise self.fail(key, f"a number {'>' if strict_min else '>='} {min:g}", v)
        if max is not None and v > max:
            raise self.fail(key, f"a number <= {max:g}", v)
        return v

    def int(self, key: str, default: Any = _MISSING, *, min: int | None = None, max: int | None = None) -> int:
        v = self.raw(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise self.fail(key, "an integer", v)
        if min is not None and v < min:
            raise self.fail(key, f"an integer >= {min}", v)
        if max is not None and v > max:
            raise self.fail(key, f"an integer <= {max}", v)
        return v

    def bool(self, key: str, default: Any = _MISSING) -> bool:
        v = self.raw(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, "true or false", v)
        return v

    def sub(self, key: str, default: Any = _MISSING) -> "Reader":
        v = self.raw(key, default)
        if v is None:
            v = {}
        return Reader(v, self.where, self._p(key))

    def list(self, key: str, default: Any = _MISSING) -> list:
        v = self.raw(key, default)
        if not isinstance(v, list):
            raise self.fail(key, "a list", v)
        return v

    def item(self, key: str, index: int) -> "Reader":
        return Reader(self.data[key][index], self.where, f"{self._p(key)}[{index}]")

    def reject_unknown(self, allowed: Iterable[str] | None = None) -> None:
        """Refuse fields we do not know: a typo must not be silently ignored."""
        allowed = set(allowed) if allowed is not None else self._used
        for key in self.data:
            if key not in allowed:
                raise ValidationError(self.where, self._p(str(key)),
                                      "no such field (known: " + ", ".join(sorted(allowed)) + ")")


def load_yaml(path) -> Any:
    """Parse a YAML file; a syntax error becomes one line naming the file and line."""
    import yaml

    try:
        return yaml.safe_load(open(path).read())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f" line {mark.line + 1}:" if mark else ""
        raise QkdbedError(f"{path}:{loc} not valid YAML ({getattr(e, 'problem', e)})") from None
    except OSError as e:
        raise QkdbedError(f"{path}: cannot read ({e.strerror})") from None
