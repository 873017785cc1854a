"""The code a stored result was computed by, as one hash: a record's ``code_sha256``.

A stored result is reused only when the same code would compute it again (a one-line change to
DRN's ``forward`` moves Set5 by 0.09 dB). The hash covers:

* the model's architecture code: the module that registered it and, transitively, every
  ``srbench``/``architectures`` module (or module of the plugin's own package) it imports at
  module level;
* the scorer and the protocol: :mod:`srbench.evaluation` and what it imports the same way
  (inference, protocols, MATLAB ``imresize``, colour conversion), and the module of every
  metric's function (:data:`srbench.schema.METRICS` names them as ``module:function`` and the
  scorer imports them by name, so no import statement leads there);
* for a plugin, its distribution's name and version; for a checkpoint whose architecture
  spandrel detected (:mod:`srbench.checkpoints`), spandrel's version.

Each module counts as its syntax tree without docstrings, so comments, formatting and docs leave
results reusable; any change to code does not. Parsing a dozen modules costs a short run about a
quarter of a second, so each file's result is kept in the user cache (``codehash/``) under the
sha256 of its bytes and the Python version (whose ``ast`` it depends on): a file whose bytes
changed is parsed again, and an unreadable cache entry is ignored and rewritten.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

# Bump when what _parse returns changes: entries of the old format are then never read.
CACHE_FORMAT = 1
SCORER_ROOT = "srbench.evaluation"
OWN_PACKAGES = ("srbench", "architectures")
DETECTED_ORIGIN = "srbench.checkpoints"  # where models of spandrel-detected checkpoints register


def model_code_sha256(model: str) -> str:
    """The ``code_sha256`` of results of registered ``model`` (a name or alias)."""
    from srbench.registry import model_origin

    origin = model_origin(model)
    top = origin.split(".")[0]
    extra = _distribution(top)
    if origin == DETECTED_ORIGIN:  # a detected checkpoint's architecture code is spandrel's
        extra += f";spandrel=={_version('spandrel')}"
    return _digest(code_modules(origin), extra)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def modules_code_sha256(*roots: str) -> str:
    """One hash of ``roots`` (module names) and the srbench modules they import: e.g. the code
    that makes an LR image, which keys the LR cache."""
    return _digest(_closure(roots, OWN_PACKAGES))


def _digest(modules: dict[str, str], extra: str = "") -> str:
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(f"{name}\0{modules[name]}\n".encode())
    digest.update(extra.encode())
    return digest.hexdigest()[:16]


def code_modules(origin: str) -> dict[str, str]:
    """Module name -> source hash of what computes a result of the model registered in module
    ``origin``: its closure, the scorer's and the metric functions' (imported by name)."""
    from srbench.schema import metric_specs

    metrics = sorted({spec.function.partition(":")[0] for spec in metric_specs()})
    top = origin.split(".")[0]
    return _closure((origin, SCORER_ROOT, *metrics), (*OWN_PACKAGES, top))


def module_digest(name: str) -> str | None:
    """The hash of module ``name``'s docstring-free syntax tree (None: no Python source), as
    ``code_sha256`` counts it: comments, formatting and docs leave it unchanged."""
    path = _source(name)
    return None if path is None else _parsed(str(path), *_stamp(path))[0]


def _distribution(top: str) -> str:
    """``name==version`` of the installed package providing a plugin's top-level package."""
    if top in OWN_PACKAGES:
        return ""
    dists = metadata.packages_distributions().get(top, [])
    return ";".join(f"{d}=={metadata.version(d)}" for d in sorted(set(dists)))


def _closure(roots: tuple[str, ...], packages: tuple[str, ...]) -> dict[str, str]:
    """Module name -> source hash of ``roots`` and the modules of ``packages`` they import."""
    seen: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _source(name)
        if path is None:
            continue
        digest, imports = _parsed(str(path), *_stamp(path))
        seen[name] = digest
        todo.extend(i for i in _resolved(imports, name, path) if i.split(".")[0] in packages)
    return seen


def _source(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


Parsed = tuple[str, tuple[tuple[str, str, int], ...]]


@lru_cache(maxsize=256)
def _parsed(path: str, mtime_ns: int, size: int) -> Parsed:
    """:func:`_parse` of a file, cached per file version (path, mtime, size) in the process and
    per content (sha256 of its bytes) on disk."""
    source = Path(path).read_bytes()
    key = hashlib.sha256(f"{CACHE_FORMAT}\0{sys.version}\0".encode() + source).hexdigest()
    entry = _cache_dir() / f"{key}.json"
    try:
        cached = json.loads(entry.read_text(encoding="utf-8"))
        if cached["key"] == key:
            return cached["digest"], tuple((m, n, int(lv)) for m, n, lv in cached["imports"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent, torn or foreign: parse again and rewrite it
    # As Path.read_text decodes: universal newlines.
    parsed = _parse(source.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n"))
    from srbench.files import atomic_write

    try:  # not fsync-ed: a torn entry fails to parse or to match its key, and is made again
        record = {"key": key, "digest": parsed[0], "imports": parsed[1]}
        atomic_write(entry, json.dumps(record) + "\n", durable=False)
    except OSError:
        pass  # a read-only cache only costs the next run the parse
    return parsed


def _cache_dir() -> Path:
    from srbench.data import default_cache_dir

    return default_cache_dir() / "codehash"


def _parse(source: str) -> Parsed:
    """(hash of the docstring-free syntax tree, module-level imports as (module, name, level))."""
    tree = ast.parse(source)
    imports: list[tuple[str, str, int]] = []
    for statement in _module_level(tree.body):
        if isinstance(statement, ast.Import):
            imports += [(alias.name, "", 0) for alias in statement.names]
        elif isinstance(statement, ast.ImportFrom):
            imports += [(statement.module or "", a.name, statement.level) for a in statement.names]
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest(), tuple(imports)


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements run at import: the body, into ``if``/``try`` blocks, not into functions nor
    into ``if TYPE_CHECKING:`` (names for annotations only, never imported at run time)."""
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.If) and _dotted(node.test).endswith("TYPE_CHECKING"):
            out += _module_level(node.orelse)
            continue
        out.append(node)
        for block in ("body", "orelse", "finalbody"):
            if isinstance(node, (ast.If, ast.Try)):
                out += _module_level(getattr(node, block, []))
        for handler in getattr(node, "handlers", []):
            out += _module_level(handler.body)
    return out


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def _resolved(imports: tuple[tuple[str, str, int], ...], name: str, path: Path) -> list[str]:
    """Absolute module names of imports (``from a import b`` may import the module a.b)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for module, member, level in imports:
        if level:
            base = package.split(".")
            base = base[: len(base) - level + 1]
            module = ".".join([*base, module] if module else base)
        out.append(module)
        if member:
            out.append(f"{module}.{member}")
    return out
