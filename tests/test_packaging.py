"""The package declares what it imports, and the lock files pin all of it consistently."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    """Normalised distribution name of a requirement string (``"scikit-learn>=1.5,<2"`` -> scikit-learn)."""
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _imported_modules(folder: Path, module_level_only: bool = False) -> set[str]:
    """Top-level names of the modules imported by the files under ``folder``; ``module_level_only``: leave
    out the imports inside functions (those run only when the function is called)."""
    modules: set[str] = set()
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        in_functions = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                        for n in ast.walk(f)}
        for node in ast.walk(tree):
            if module_level_only and id(node) in in_functions:
                continue
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


# Extras of the package itself that gallery_core imports lazily (inside functions, for one feature), so that
# the base install works without them: `distributed` (Ray, for --engine ray), `onnx` (ONNX Runtime, the CPU
# path of the trunk pass and embed), `openvino` (its opt-in bfloat16 alternative). The dev lock includes them.
RUNTIME_EXTRAS = ("distributed", "onnx", "openvino")


def _third_party(modules: set[str], declared: set[str]) -> dict[str, list[str] | None]:
    """The modules among ``modules`` that no distribution in ``declared`` provides, with their providers."""
    providers = metadata.packages_distributions()
    third_party = modules - set(sys.stdlib_module_names) - {"gallery_core"}
    return {m: providers.get(m) for m in third_party if not {_name(d) for d in providers.get(m, [m])} & declared}


def _lock(name: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            package, _, version = line.partition("==")
            assert version, f"requirements/{name}: {line!r} is not pinned with =="
            pins[_name(package)] = version.split(";")[0].strip()
    return pins


def test_every_third_party_import_of_the_package_is_a_declared_dependency():
    extras = PYPROJECT["project"]["optional-dependencies"]
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    optional = {_name(r) for extra in RUNTIME_EXTRAS for r in extras[extra]}
    undeclared = _third_party(_imported_modules(REPO / "gallery_core"), declared | optional)
    assert not undeclared, f"imported by gallery_core but not in pyproject's dependencies: {undeclared}"
    # The package imports without its extras: their modules are imported only inside functions.
    eager = _third_party(_imported_modules(REPO / "gallery_core", module_level_only=True), declared)
    assert not eager, f"imported at module level but only in an extra (import it inside the function): {eager}"


def test_every_third_party_import_of_the_tests_is_a_declared_dependency_or_test_extra():
    """A fresh `make test` installs only the lock: a test importing an undeclared package fails there."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"] + extras["test"]}
    providers = metadata.packages_distributions()
    local = {"gallery_core", "ui", "conftest", "conftest_app", "tests", "benchmarks"}
    third_party = _imported_modules(REPO / "tests") - set(sys.stdlib_module_names) - local
    undeclared = {m: providers.get(m) for m in third_party
                  if not {_name(d) for d in providers.get(m, [m])} & declared
                  and not (REPO / "tests" / f"{m}.py").exists()
                  and not (REPO / "benchmarks" / f"{m}.py").exists()}  # a benchmark script a test imports
    assert not undeclared, f"imported by tests/ but not a dependency or in the test extra: {undeclared}"


def test_lock_files_pin_every_declared_dependency_and_agree():
    runtime, dev, bench = _lock("runtime.lock"), _lock("dev.lock"), _lock("bench.lock")
    for requirement in PYPROJECT["project"]["dependencies"]:
        assert _name(requirement) in runtime, f"{requirement} is not in requirements/runtime.lock"
    extras = PYPROJECT["project"]["optional-dependencies"]
    for requirement in extras["test"] + extras["lint"] + [r for e in RUNTIME_EXTRAS for r in extras[e]]:
        assert _name(requirement) in dev, f"{requirement} is not in requirements/dev.lock"
    for requirement in (r for e in RUNTIME_EXTRAS for r in extras[e]):
        assert _name(requirement) not in runtime, f"{requirement} is an extra: keep it out of runtime.lock"
    for requirement in extras["bench"]:
        assert _name(requirement) in bench, f"{requirement} is not in requirements/bench.lock"
    for other in (dev, bench):
        assert {p: other[p] for p in runtime} == runtime, "a package has two versions across the lock files"
    assert not set(extras["test"] + extras["lint"]) & set(PYPROJECT["project"]["dependencies"])


def test_the_installed_environment_matches_the_lock():
    """What the Makefile installed is what the lock says (a stale venv fails here, not in a mystery)."""
    dev = _lock("dev.lock")
    installed = {_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {p: (v, installed.get(p)) for p, v in dev.items() if installed.get(p) not in (v, None)}
    assert not wrong, f"installed versions differ from requirements/dev.lock (run make test again): {wrong}"
