"""Room sizes: no module in ``srbench/`` or ``architectures/`` over 600 lines, no function over 120.

Lines are physical lines: a module's whole file, a function from its ``def`` to its last line
(docstring and nested functions included). The allowlists hold what was over on the day the test
came in and is being split; they only shrink: an entry that is no longer over fails the test
until it is removed, so a split, once merged, cannot grow back unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("srbench", "architectures")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 120

# Module -> who is splitting it, and (module, function) -> who is splitting it: empty since the
# splits of issue 24 landed; an entry here is a debt with a name on it.
MODULES_OVER: dict[str, str] = {}
FUNCTIONS_OVER: dict[tuple[str, str], str] = {}


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _long_functions(path: Path, root: Path = ROOT) -> dict[tuple[str, str], int]:
    module = path.relative_to(root).as_posix()
    out: dict[tuple[str, str], int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                out[(module, node.name)] = lines
    return out


def test_no_module_over_600_lines():
    over = {
        p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for p in _modules()
    }
    over = {m: n for m, n in over.items() if n > MAX_MODULE_LINES}
    new = {m: n for m, n in over.items() if m not in MODULES_OVER}
    assert not new, f"modules over {MAX_MODULE_LINES} lines (split them): {new}"
    done = sorted(set(MODULES_OVER) - set(over))
    assert not done, f"no longer over {MAX_MODULE_LINES} lines; remove from MODULES_OVER: {done}"


def test_no_function_over_120_lines():
    over: dict[tuple[str, str], int] = {}
    for path in _modules():
        over.update(_long_functions(path))
    new = {f"{m}:{f}": n for (m, f), n in over.items() if (m, f) not in FUNCTIONS_OVER}
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines (split them): {new}"
    done = sorted(set(FUNCTIONS_OVER) - set(over))
    assert not done, (
        f"no longer over {MAX_FUNCTION_LINES} lines; remove from FUNCTIONS_OVER: {done}"
    )


def test_the_count_includes_docstring_and_nested_functions(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES - 4))
    source = f'def f():\n    """Doc."""\n    def g():\n        pass\n{body}\n'
    (tmp_path / "pkg").mkdir()
    path = tmp_path / "pkg" / "m.py"
    path.write_text(source)
    lines = len(source.splitlines())
    assert lines == MAX_FUNCTION_LINES
    assert _long_functions(path, tmp_path) == {}
    path.write_text(source + "    y = 0\n")
    assert _long_functions(path, tmp_path) == {("pkg/m.py", "f"): MAX_FUNCTION_LINES + 1}
