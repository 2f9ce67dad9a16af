"""The package's shape: one sub-package per stage, small modules, one reader of the
environment, one orchestrator, and no sample-data code in production."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import profilecast
from profilecast.config import REPO_ROOT

PACKAGE = Path(profilecast.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports, at any depth (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_no_module_over_400_lines():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in MODULES}
    assert len(sizes) > 20
    assert {k: v for k, v in sizes.items() if v > 400} == {}


def test_only_config_reads_the_environment():
    readers = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                if isinstance(node.value, ast.Name) and node.value.id == "os":
                    readers.append(str(path.relative_to(PACKAGE)))
    assert readers and set(readers) == {"config.py"}


def test_every_stage_is_a_documented_sub_package():
    stages = ("sources", "campaigns", "export", "quality", "warehouse", "activation",
              "collector", "fresh")  # fmt: skip
    for stage in stages:
        init = PACKAGE / stage / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{stage}/__init__.py needs a docstring saying what it owns"


def test_the_cli_goes_through_the_pipeline():
    used = {m for m in _imports(PACKAGE / "cli.py") if m.startswith("profilecast.")}
    stages = {"sources", "campaigns", "export", "quality", "warehouse", "activation", "storage",
              "collector", "fresh"}  # fmt: skip
    assert "profilecast.pipeline" in used or "profilecast" in _imports(PACKAGE / "cli.py")
    assert not {m for m in used if m.split(".")[1] in stages}


def test_the_production_package_does_not_import_the_generator():
    for path in MODULES:
        bad = {m for m in _imports(path) if m.startswith("profilecast_dev")}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"
    # and importing every production module (what Airflow's workers do) loads none of it
    code = (
        "import importlib, pkgutil, sys, profilecast\n"
        "for m in pkgutil.walk_packages(profilecast.__path__, 'profilecast.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('profilecast_dev')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dag_file_parses_without_heavy_modules():
    """The DAG processor parses the DAG file every few seconds: no pandas, dbt or boto3."""
    code = (
        "import runpy, sys\n"
        f"runpy.run_path({str(REPO_ROOT / 'dags' / 'customer_profiles.py')!r})\n"
        "heavy = ('pandas', 'dbt', 'boto3', 'great_expectations', 'duckdb', 'pyarrow')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_package_modules_all_import():
    names = [m.name for m in pkgutil.walk_packages(profilecast.__path__, "profilecast.")]
    assert len(names) > 20
    for name in names:
        importlib.import_module(name)
