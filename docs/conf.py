"""Sphinx configuration of the seqjax API reference (offline: no inventory, no CDN).

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (from the repository root).

The API pages (``docs/api/<subpackage>.md``) are written here, at build time, from each
subpackage's ``__all__``, so that every public name is documented and none can be forgotten.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document this checkout's seqjax, not an installed copy

import seqjax  # noqa: E402

project = "seqjax"
author = "the seqjax authors"
copyright = "the seqjax authors, Apache-2.0"
release = version = seqjax.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/: equations render without a CDN
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# A missing or broken cross-reference fails the build (with -W). Names of other libraries cannot be
# resolved without their inventories, which an offline build does not fetch: only those are let go.
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(jax|jaxlib|flax|optax|numpy|np|jnp|orbax|keras|torch|tensorflow_datasets|tfds|ml_collections|tensorboardX|h5py|collections|typing|abc|collections\.abc|pathlib|enum|os|types|concurrent|functools|dataclasses|re)(\..*)?",
    ),
    # Module constants that docstrings name (not public names, so not on the pages):
    (r"py:data", r"seqjax\.train\.losses\.POINTWISE|seqjax\.models\.mobilenet_v2\.BLOCKS"),
    # Private type aliases in signatures (documented where they are defined, not public names):
    (r"py:.*", r"(seqjax\.[\w.]+\.)?(Activation|ArrayTree|Label)"),
    (
        r"py:.*",
        r"(Array|ArrayLike|Callable|Sequence|Mapping|Iterator|Iterable|Any|PRNGKey|PathLike|Path|ndarray|Module|NamedSharding|Mesh|PyTree|DTypeLike|Shape|Dtype|Initializer)",
    ),
    (
        r"py:.*",
        r"(int|float|str|bool|tuple|list|dict|None|object|type|bytes|Exception|ValueError|UserWarning|NamedTuple)",
    ),
]
suppress_warnings = ["myst.header"]  # benchmarks/README.md jumps heading levels; it reads fine

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": False}  # members: listed per class below
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_inherit_docstrings = False  # no Flax Module internals (setup, ...) on our pages

html_theme = "sphinx_book_theme"
html_title = f"seqjax {version}"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
}
html_static_path: list[str] = []


def public_subpackages() -> list[str]:
    """The subpackages of seqjax that export public names (an ``__all__``), in a fixed order."""
    first = ["nn", "data", "train", "diagnostics", "interop", "transfer", "models"]
    found = [m.name for m in pkgutil.iter_modules(seqjax.__path__) if m.ispkg]
    names = [n for n in first if n in found] + sorted(n for n in found if n not in first)
    return [n for n in names if hasattr(importlib.import_module(f"seqjax.{n}"), "__all__")]


def api_page(name: str) -> str:
    """The MyST source of one subpackage's API page: its docstring, then every name of ``__all__``."""
    module = importlib.import_module(f"seqjax.{name}")
    lines = [
        f"# seqjax.{name}",
        "",
        "```{eval-rst}",
        f".. automodule:: seqjax.{name}",
        "   :no-members:",
        "",
        f".. currentmodule:: seqjax.{name}",
        "",
    ]
    for public in module.__all__:
        obj = getattr(module, public)
        if isinstance(obj, type):
            directive = "autoexception" if issubclass(obj, BaseException) else "autoclass"
            members = class_members(obj)
            option = f"   :members: {', '.join(members)}" if members else "   :no-members:"
            lines += [f".. {directive}:: {public}", option, ""]
            continue
        directive = "autofunction" if callable(obj) else "autodata"
        lines += [f".. {directive}:: {public}", ""]
    # The modules inside the subpackage, as link targets for :mod: (their public names are above).
    taken = {f"seqjax.{name}.{public}" for public in module.__all__}
    submodules = [
        f"seqjax.{name}.{m.name}"
        for m in pkgutil.iter_modules(module.__path__)
        if not m.name.startswith("_") and f"seqjax.{name}.{m.name}" not in taken
    ]
    if submodules:
        lines += ["```", "", "## Modules", "", "```{eval-rst}"]
        for sub in submodules:
            lines += [f".. py:module:: {sub}", ""]
        lines += [f"- :mod:`{sub}`: {synopsis(sub)}" for sub in submodules]
        lines += [""]
    lines += ["```", ""]
    return "\n".join(lines)


def class_members(cls: type) -> list[str]:
    """The documented methods and properties of a seqjax class, its own and inherited.

    Not its fields (a dataclass's or a NamedTuple's, e.g. a Flax module's ``activation = jnp.tanh``
    default): those are in the signature and the docstring's "Attributes" section already.
    """
    fields = (
        {f.name for f in dataclasses.fields(cls)}
        if dataclasses.is_dataclass(cls)
        else set(getattr(cls, "_fields", ()))
    )
    names: list[str] = []
    for klass in cls.__mro__:
        if not klass.__module__.startswith("seqjax."):
            continue
        for name, value in vars(klass).items():
            if name in fields or name in names or (name.startswith("_") and name != "__call__"):
                continue
            function = getattr(value, "__func__", value)
            if isinstance(value, property):
                function = value.fget
            if not (inspect.isfunction(function) and function.__doc__):
                continue
            names.append(name)
    return names


def synopsis(module_name: str) -> str:
    """The first sentence of a module's docstring, with roles shown as plain code."""
    # Read from the source, not imported: a module may need an optional extra (TFDS builders).
    path = ROOT.joinpath(*module_name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    doc = (ast.get_docstring(ast.parse(path.read_text())) or "").strip()
    first = re.split(r"(?<=\.)\s|\n\n", doc, maxsplit=1)[0].replace("\n", " ").rstrip(":")
    return re.sub(r":[\w:]+:`~?([^`]+)`", r"``\1``", first)


def write_api_pages() -> list[str]:
    """Writes ``docs/api/<name>.md`` for every public subpackage (unchanged files are kept)."""
    out = DOCS / "api"
    out.mkdir(exist_ok=True)
    names = public_subpackages()
    for name in names:
        path = out / f"{name}.md"
        text = api_page(name)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    index = ["# API reference", "", "```{toctree}", ":maxdepth: 1", ""]
    index += [name for name in names] + ["```", ""]
    index_text = "\n".join(index)
    if not (out / "index.md").exists() or (out / "index.md").read_text() != index_text:
        (out / "index.md").write_text(index_text)
    return names


API_SUBPACKAGES = write_api_pages()
