"""The examples in the README and in docstrings run and print what they claim."""
import doctest
from pathlib import Path

import minivae.engine.tensor

ROOT = Path(__file__).resolve().parents[1]


def test_readme_examples_run():
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_docstring_examples_run():
    result = doctest.testmod(minivae.engine.tensor, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def referenced_tests(text: str) -> set[tuple[str, str]]:
    """(file, test name) pairs named in ``text``; a bare ``::name`` refers to the last file."""
    import re

    found, current = set(), None
    for file, name in re.findall(r"(tests/test_\w+\.py)?::(test_\w+)", text):
        current = file or current
        found.add((current, name))
    return found


def test_every_named_test_exists():
    """Each "Verified by" line and each row of docs/derivations.md names a test that exists."""
    sources = [*sorted((ROOT / "minivae").rglob("*.py")), ROOT / "docs" / "derivations.md"]
    references = set()
    for source in sources:
        references |= referenced_tests(source.read_text(encoding="utf-8"))
    assert len(references) > 30
    missing = [f"{file}::{name}" for file, name in sorted(references)
               if f"def {name}(" not in (ROOT / file).read_text(encoding="utf-8")]
    assert not missing, f"named in docs but not defined: {missing}"
