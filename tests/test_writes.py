"""Every file srbench writes goes through :mod:`srbench.files` (temporary file, fsync, rename).

A syntax-tree scan of ``srbench/`` and ``architectures/``: a call that writes or renames a file
(``os.replace``/``os.rename``, ``Path.rename``/``Path.replace``, ``write_text``/``write_bytes``,
``open`` for writing, ``shutil`` copies and moves, ``torch.save``/``np.save``/``json.dump``,
``savefig`` and ``.save``) must sit inside ``with atomic_path(...)``, or be listed in
:data:`NOT_ATOMIC` with the reason it may not or need not be atomic. ``srbench/files.py`` is the
one module that renames.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("srbench", "architectures")

# (module, function, call) -> why it is not written through srbench.files.
NOT_ATOMIC: dict[tuple[str, str, str], str] = {
    ("srbench/datafetch.py", "download", "open"): "a resumable download appends to NAME.part",
    ("srbench/datafetch.py", "download", "os.replace"): "the checked NAME.part becomes NAME",
    ("srbench/datafetch.py", "_match", ".save"): "into a private staging folder (mkdtemp)",
    ("srbench/datafetch.py", "_install", "os.rename"): "a verified staging folder moved whole",
    ("srbench/datafetch.py", "fill", ".write_bytes"): "archive members into a private scratch "
    "folder (mkdtemp)",
    ("srbench/results.py", "acquire", ".write_text"): "a claim: written beside, then os.link-ed "
    "(a link fails where a claim exists; a rename would replace it)",
    ("srbench/results.py", "acquire", "os.link"): "likewise",
    ("srbench/training/checkpoint.py", "append_log", "open"): "the training log: one appended line "
    "per write, trimmed atomically on resume",
    ("srbench/profiling/latency.py", "_reset_peak_rss", "open"): "a kernel control file "
    "(/proc/self/clear_refs), not a file srbench makes",
    (
        "srbench/report/visuals.py",
        "visuals",
        "shutil.copyfile",
    ): "into this build's new img/build-* folder, published by index.html's atomic swap",
    ("srbench/report/visuals.py", "visuals", ".write_bytes"): "likewise, into the new build folder",
    (
        "srbench/report/plots.py",
        "learning_curves",
        ".savefig",
    ): "likewise, into the new build folder",
    ("srbench/crops.py", "_write_png", ".save"): "PNG encoded into memory (io.BytesIO), then "
    "atomic_write",
    ("srbench/runner.py", "save_crop", ".save"): "srbench.crops.save, which writes through "
    "atomic_write",
}

_OS_NAMES = {"os.replace", "os.rename", "os.renames", "os.link"}
_SHUTIL = {"shutil.copyfile", "shutil.copy", "shutil.copy2", "shutil.move", "shutil.copytree"}
_SAVES = {"torch.save", "np.save", "numpy.save", "json.dump", "pickle.dump"}
_METHODS = {"write_text", "write_bytes", "savefig", "save"}


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _write_call(call: ast.Call) -> str | None:
    """What ``call`` writes with, when it writes or renames a file; None otherwise."""
    func, name = call.func, _dotted(call.func)
    if name in _OS_NAMES | _SHUTIL | _SAVES:
        return name
    if name == "open":
        mode = call.args[1] if len(call.args) > 1 else None
        mode = mode or next((k.value for k in call.keywords if k.arg == "mode"), None)
        # Any mode the expression can take (``"ab" if have else "wb"``).
        modes = [n.value for n in ast.walk(mode) if isinstance(n, ast.Constant)] if mode else []
        return "open" if any(c in str(m) for m in modes for c in "wax+") else None
    if not isinstance(func, ast.Attribute):
        return None
    if func.attr in _METHODS:
        return f".{func.attr}"
    # Path.rename(target) / Path.replace(target): one argument; str.replace takes two,
    # DataFrame.rename and dataclasses.replace keywords.
    one_argument = len(call.args) == 1 and not call.keywords
    if func.attr in ("rename", "replace") and one_argument and _dotted(func.value) != "dataclasses":
        return f".{func.attr}"
    return None


def _in_atomic_block(with_items: list[ast.withitem]) -> bool:
    return any(
        isinstance(i.context_expr, ast.Call) and _dotted(i.context_expr.func) == "atomic_path"
        for i in with_items
    )


def _writes(path: Path) -> list[tuple[str, str, int]]:
    """(function, call, line) of every write outside ``with atomic_path(...)`` in ``path``."""
    found: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, function: str, atomic: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.With | ast.AsyncWith) and _in_atomic_block(node.items):
            atomic = True
        if isinstance(node, ast.Call) and not atomic:
            what = _write_call(node)
            if what:
                found.append((function, what, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, function, atomic)

    visit(ast.parse(path.read_text(encoding="utf-8")), "<module>", False)
    return found


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_files_are_written_only_through_srbench_files():
    unlisted, seen = [], set()
    for path in _modules():
        module = path.relative_to(ROOT).as_posix()
        if module == "srbench/files.py":
            continue
        for function, what, line in _writes(path):
            key = (module, function, what)
            seen.add(key)
            if key not in NOT_ATOMIC:
                unlisted.append(f"{module}:{line} {function}(): {what}")
    assert not unlisted, "write through srbench.files.atomic_path/atomic_write: " + "; ".join(
        unlisted
    )
    stale = sorted(set(NOT_ATOMIC) - seen)
    assert not stale, f"no longer written there; remove from NOT_ATOMIC: {stale}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\ndef f(a, b):\n    os.replace(a, b)\n", [("f", "os.replace", 3)]),
        ("def f(p):\n    p.write_text('x')\n", [("f", ".write_text", 2)]),
        ("def f(p, q):\n    p.rename(q)\n", [("f", ".rename", 2)]),
        ("def f(p):\n    open(p, 'a').write('x')\n", [("f", "open", 2)]),
        ("def f(p):\n    open(p, mode='wb')\n", [("f", "open", 2)]),
        ("def f(p, h):\n    open(p, 'ab' if h else 'wb')\n", [("f", "open", 2)]),
        ("def f(p):\n    open(p).read()\n", []),
        ("def f(p):\n    open(p, 'rb').read()\n", []),
        ("def f(s):\n    return s.replace('a', 'b')\n", []),
        ("def f(df):\n    return df.rename(columns={})\n", []),
        ("def f(p, fig):\n    with atomic_path(p) as tmp:\n        fig.savefig(tmp)\n", []),
    ],
)
def test_the_scan_finds_writes_and_only_writes(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert _writes(path) == expected


def test_atomic_write_fsyncs_file_and_folder_unless_not_durable(tmp_path, monkeypatch):
    import os

    from srbench import files

    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: synced.append(fd) or real(fd))
    files.atomic_write(tmp_path / "a.txt", "one\n")
    assert len(synced) == 2  # the data, then the rename in its folder
    files.atomic_write(tmp_path / "b.txt", "two\n", durable=False)
    assert len(synced) == 2  # still atomic (renamed into place), not flushed
    assert (tmp_path / "b.txt").read_text() == "two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
