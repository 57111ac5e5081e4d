"""The examples in the README and in docstrings run and print what they claim."""
import doctest
from pathlib import Path

import pytest

import minivae.engine.tensor

ROOT = Path(__file__).resolve().parents[1]


# the README's detect_anomaly example takes log(−1) on purpose, and says NumPy warns
@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")
def test_readme_examples_run():
    result = doctest.testfile(str(ROOT / "README.md"), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_docstring_examples_run():
    result = doctest.testmod(minivae.engine.tensor, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


TEST_FILE = r"tests/(?:\w+/)*\w+\.py"  # tests/test_x.py, tests/<folder>/test_x.py, tests/fuzzing.py


def referenced_tests(text: str) -> set[tuple[str, str]]:
    """(file, test name) pairs named in ``text``, as ``tests/<folder>/test_x.py::test_name``;
    a bare ``::test_name`` refers to the last file named before it."""
    import re

    found, current = set(), None
    for file, name in re.findall(rf"({TEST_FILE})?::(test_\w+)", text):
        current = file or current
        found.add((current, name))
    return found


def referenced_files(text: str) -> set[str]:
    """Every test file path named in ``text``, with or without a test name after it."""
    import re

    return set(re.findall(TEST_FILE, text))


def test_referenced_tests_reads_paths_in_folders():
    text = ("`tests/engine/ops/test_reduce.py::test_a`, `::test_b`; tests/test_cli.py::test_c "
            "and tests/io/test_idx.py")
    assert referenced_tests(text) == {("tests/engine/ops/test_reduce.py", "test_a"),
                                      ("tests/engine/ops/test_reduce.py", "test_b"),
                                      ("tests/test_cli.py", "test_c")}
    assert referenced_files(text) == {"tests/engine/ops/test_reduce.py", "tests/test_cli.py",
                                      "tests/io/test_idx.py"}


def test_every_named_test_exists():
    """Each "Verified by" line, and each test named in README.md and docs/*.md, names a test
    file that exists and a test defined in it."""
    sources = [*sorted((ROOT / "minivae").rglob("*.py")), ROOT / "README.md",
               *sorted((ROOT / "docs").glob("*.md"))]
    references, files = set(), set()
    for source in sources:
        text = source.read_text(encoding="utf-8")
        references |= referenced_tests(text)
        files |= referenced_files(text)
    assert len(references) > 30
    absent = sorted(file for file in files if not (ROOT / file).is_file())
    assert not absent, f"test files named in docs but absent: {absent}"
    missing = [f"{file}::{name}" for file, name in sorted(references)
               if f"def {name}(" not in (ROOT / file).read_text(encoding="utf-8")]
    assert not missing, f"named in docs but not defined: {missing}"
