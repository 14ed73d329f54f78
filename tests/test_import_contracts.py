"""Import contracts (in the spirit of napari's import-linter contracts), checked by parsing the
source with `ast` so a broken layer shows up as a failing test, not as a surprise at run time.

- `regviewer.core` imports no GUI library (Qt, pyqtgraph, vtk) and nothing from `regviewer.gui`
  or `regviewer.cli`.
- A module in `regviewer/gui/panels/` imports no other panel and not the main window (panels
  share widgets through `regviewer.gui.widgets`, and talk to the window through its host).
- `regviewer.cli` imports `regviewer.gui` only lazily, inside the function that runs `open`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "regviewer"
GUI_LIBRARIES = ("PyQt6", "PySide6", "PyQt5", "pyqtgraph", "vtk", "vtkmodules")


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name (relative imports resolved)
    line: int
    function: str | None  # the enclosing function's name, None at module level


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[Import]:
    """Every import in `path`, with the function it sits in (lazy imports have one)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    found: list[Import] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                continue  # names for type hints only: never imported at run time
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Import):
                found.extend(Import(alias.name, child.lineno, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                found.append(Import(base, child.lineno, function))
                # `from regviewer.gui import panels` names a module too
                found.extend(Import(f"{base}.{alias.name}", child.lineno, function) for alias in child.names)
            visit(child, inner)

    visit(tree, None)
    return found


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_parser_sees_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "regviewer" / "gui" / "panels"
    pkg.mkdir(parents=True)
    src = pkg / "demo.py"
    src.write_text("import os\nfrom . import other\nif TYPE_CHECKING:\n    import hinted\n\n"
                   "def f():\n    from regviewer.gui import main_window\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = imports_of(src)
    finally:
        ROOT = saved
    names = {(i.module, i.function) for i in found}
    assert ("os", None) in names
    assert ("regviewer.gui.panels.other", None) in names
    assert ("regviewer.gui.main_window", "f") in names
    assert not any(module == "hinted" for module, _ in names)


def test_core_imports_no_gui_library_and_no_upper_layer():
    bad = [f"{_rel(p)}:{i.line} imports {i.module}"
           for p in _modules(PACKAGE / "core") for i in imports_of(p)
           if i.module.split(".")[0] in GUI_LIBRARIES
           or _under(i.module, "regviewer.gui") or _under(i.module, "regviewer.cli")]
    assert not bad, "core must stay GUI-free:\n" + "\n".join(bad)


def test_panels_import_neither_each_other_nor_the_main_window():
    panels = PACKAGE / "gui" / "panels"
    names = {_module_name(p) for p in _modules(panels) if p.name != "__init__.py"}
    assert names, "no panels found"
    bad = []
    for path in _modules(panels):
        me = _module_name(path)
        for i in imports_of(path):
            other_panel = next((n for n in names if _under(i.module, n) and n != me), None)
            if other_panel or _under(i.module, "regviewer.gui.main_window"):
                bad.append(f"{_rel(path)}:{i.line} imports {i.module}")
    assert not bad, "panels must stay independent (share widgets via regviewer.gui.widgets):\n" + "\n".join(bad)


def test_widgets_and_views_do_not_import_panels_or_the_window():
    bad = [f"{_rel(p)}:{i.line} imports {i.module}"
           for folder in ("widgets", "views") for p in _modules(PACKAGE / "gui" / folder) for i in imports_of(p)
           if _under(i.module, "regviewer.gui.panels") or _under(i.module, "regviewer.gui.main_window")]
    assert not bad, "\n".join(bad)


def test_cli_imports_the_gui_only_inside_the_open_command():
    seen = []
    bad = []
    for path in _modules(PACKAGE / "cli"):
        for i in imports_of(path):
            if _under(i.module, "regviewer.gui") or i.module.split(".")[0] in GUI_LIBRARIES:
                seen.append(i)
                if i.function is None or "open" not in i.function:
                    bad.append(f"{_rel(path)}:{i.line} imports {i.module} in {i.function or 'module scope'}")
    assert not bad, "the command line may import the GUI only lazily for `open`:\n" + "\n".join(bad)
    assert seen, "the `open` command no longer imports the GUI at all: update this contract"


def test_headless_commands_do_not_load_the_gui():
    """The same contract at run time: the parser and every headless command import no GUI."""
    import subprocess
    import sys

    script = ("import sys, regviewer.cli.parser, regviewer.cli.commands, regviewer.cli.progress\n"
              "bad = [m for m in sys.modules if m.startswith('regviewer.gui') or m.split('.')[0] in %r]\n"
              "assert not bad, bad\n" % (GUI_LIBRARIES,))
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_no_import_of_our_own_modules_is_guarded_by_except_import_error():
    """Our modules are one package: a missing one is a bug to see, not a fallback to hide."""
    bad = []
    for path in _modules(PACKAGE):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Try):
                continue
            catches = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if not catches & {"ImportError", "ModuleNotFoundError", "(ImportError, ModuleNotFoundError)"}:
                continue
            ours = [n for stmt in node.body for n in ast.walk(stmt)
                    if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("regviewer"))
                    or isinstance(n, ast.Import) and any(a.name.startswith("regviewer") for a in n.names)]
            bad.extend(f"{_rel(path)}:{n.lineno}" for n in ours)
    assert not bad, "imports of our own modules inside `try/except ImportError`:\n" + "\n".join(bad)
