"""Strict JSON: what minivae writes as JSON (metadata, metrics) any JSON parser reads back.

Python's ``json`` writes NaN and Infinity, which are not JSON, and knows no NumPy types; it
also recurses once per nesting level, so text nested a hundred thousand levels deep is a
RecursionError rather than an answer.  Here NaN and ±∞ are refused with the place they sit
in, NumPy scalars and arrays become numbers and lists, and nesting is bounded by
``MAX_JSON_DEPTH`` on writing and, without recursion, before parsing.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from minivae.io.atomic import PathLike, atomic_write

MAX_JSON_DEPTH = 100  # a training checkpoint's metadata nests 4 levels


def _json_default(value: Any) -> Any:
    """Let NumPy scalars and arrays through ``json``, which only knows Python types."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        return value.tolist()
    raise TypeError(f"object of type {type(value).__name__} is not JSON serializable")


def _first_non_finite(obj: Any, where: str, seen: set[int] | None = None) -> str | None:
    """Where the first NaN or infinity inside ``obj`` is, as an index expression, or None."""
    if isinstance(obj, (float, np.floating)):
        return None if math.isfinite(obj) else f"{where} = {obj!r}"
    if isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        bad = np.argwhere(~np.isfinite(obj))
        return None if len(bad) == 0 else f"{where}[{', '.join(map(str, bad[0]))}] is not finite"
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return None
    if isinstance(obj, Mapping):
        seen.add(id(obj))
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        seen.add(id(obj))
        items = enumerate(obj)
    else:
        return None
    for key, value in items:
        found = _first_non_finite(value, f"{where}[{key!r}]", seen)
        if found:
            return found
    return None


def to_json(obj: Any, argument: str, indent: int | None = None) -> str:
    """Strict JSON text: NaN and infinity are refused, since they are not valid JSON, and so is
    nesting deeper than ``MAX_JSON_DEPTH``, which loading refuses."""
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False, default=_json_default)
    except TypeError as error:
        raise TypeError(f"{argument} is not JSON-serializable: {error}") from None
    except RecursionError:
        raise ValueError(f"{argument} nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:
        where = _first_non_finite(obj, argument) if "Out of range" in str(error) else None
        if where is None:
            raise ValueError(f"{argument} cannot be written as JSON: {error}") from None
        raise ValueError(f"{argument} must not contain NaN or infinity (not valid JSON): "
                         f"{where}") from None
    problem = json_depth_problem(text)
    if problem:
        raise ValueError(f"{argument} {problem}")
    return text


# A JSON string (escapes included) or a bracket; brackets inside strings are not nesting.
_JSON_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def json_depth_problem(text: str) -> str | None:
    """Why ``text`` nests too deeply to be parsed, or None; counted without recursion, so text
    nested a million levels deep costs one pass instead of a RecursionError."""
    depth = 0
    for token in _JSON_STRING_OR_BRACKET.finditer(text):
        bracket = token.group()
        if bracket in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return f"nests deeper than {MAX_JSON_DEPTH} levels"
        elif bracket in ("]", "}"):
            depth -= 1
    return None


def write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (indent 2, trailing newline), atomically.

    NaN and infinity are refused with a ``ValueError`` naming where they are, so the file stays
    readable by any JSON parser.  NumPy scalars and arrays are written as numbers and lists.

    Verified by: tests/io/test_checkpoint.py::test_write_json_rejects_non_finite
    """
    text = to_json(obj, "obj", indent=2) + "\n"

    def write(tmp_path: str) -> None:
        with open(tmp_path, "w", encoding="utf-8") as file:
            file.write(text)

    return atomic_write(path, write)
