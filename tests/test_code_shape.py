"""Shape rules of the library that a reader relies on: no function longer than 100 lines of code,
and docs/ARCHITECTURE.md names only things that exist."""
from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ssl_course"
MAX_FUNCTION_LINES = 100


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef, source_lines: list[str]) -> int:
    """Lines of code in a function: its span, less its docstring, blank lines and comment lines."""
    skip: set[int] = set()
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        skip.update(range(body[0].lineno, body[0].end_lineno + 1))
    count = 0
    for number in range(node.lineno, node.end_lineno + 1):
        text = source_lines[number - 1].strip()
        if number in skip or not text or text.startswith("#"):
            continue
        count += 1
    return count


def _long_functions() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = _code_lines(node, lines)
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_100_lines_of_code():
    long = _long_functions()
    assert not long, f"split these into named steps (at most {MAX_FUNCTION_LINES} lines of code each): {long}"


def test_the_length_rule_counts_code_not_docstrings_or_comments():
    tree = ast.parse('def f():\n    """doc\n    more doc"""\n    # a comment\n\n    x = 1\n    return x\n')
    lines = 'def f():\n    """doc\n    more doc"""\n    # a comment\n\n    x = 1\n    return x\n'.splitlines()
    assert _code_lines(tree.body[0], lines) == 3   # def, x = 1, return x


# ------------------------------------------------------------------ docs/ARCHITECTURE.md ------------
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*")


def _module_table() -> list[tuple[str, list[str]]]:
    """``[(module, [backticked names of the row])]`` from the "Modules and their public names" table."""
    rows = []
    for line in ARCHITECTURE.read_text().splitlines():
        match = re.match(r"^\| `(ssl_course[\w.]*)` \| (.*) \|$", line)
        if match:
            rows.append((match.group(1), re.findall(r"`([^`]+)`", match.group(2))))
    return rows


def _exists_in(module, name: str) -> bool:
    """``name`` is an attribute of the module, of a class defined in it, or a submodule of it."""
    if hasattr(module, name):
        return True
    for value in vars(module).values():
        if inspect.isclass(value) and (hasattr(value, name) or name in getattr(value, "__dataclass_fields__", {})):
            return True
    try:
        importlib.import_module(f"{module.__name__}.{name}")
        return True
    except ImportError:
        return False


def test_the_architecture_table_has_rows():
    assert len(_module_table()) >= 10, "docs/ARCHITECTURE.md lost its module table"


@pytest.mark.parametrize("module_name, names", _module_table(), ids=[row[0] for row in _module_table()])
def test_every_name_the_architecture_table_cites_exists(module_name, names):
    module = importlib.import_module(module_name)
    missing = []
    for text in names:
        match = IDENTIFIER.match(text)
        if not match or "*" in text or "<" in text or text.startswith(("uint8", "int64", "float", "torch.")):
            continue  # shapes, dtypes, string values, name patterns
        name = match.group(0)
        if name.startswith("ssl_course"):
            continue  # checked by the dotted-name test
        if not _exists_in(module, name):
            missing.append(name)
    assert not missing, f"docs/ARCHITECTURE.md cites {missing} in {module_name}, which has no such name"


def test_every_dotted_name_in_the_architecture_page_exists():
    missing = []
    for dotted in sorted(set(re.findall(r"`(ssl_course(?:\.\w+)+)", ARCHITECTURE.read_text()))):
        parts = dotted.split(".")
        for split in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
            try:
                value = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            try:
                for attribute in parts[split:]:
                    value = getattr(value, attribute)
            except AttributeError:
                missing.append(dotted)
            break
        else:
            missing.append(dotted)
    assert not missing, f"docs/ARCHITECTURE.md cites names that do not exist: {missing}"


def test_the_method_contract_block_names_real_hooks():
    from ssl_course.methods.base import Method

    text = ARCHITECTURE.read_text()
    block = text.split("## The Method contract", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    names = re.findall(r"def (\w+)\(", block) + re.findall(r"^\s{4}(\w+)\s*:", block, flags=re.M)
    assert names, "the Method contract block lists no hooks"
    missing = [name for name in names if not hasattr(Method, name)]
    assert not missing, f"docs/ARCHITECTURE.md's Method contract names {missing}, which Method does not have"
