"""The API reference site: it builds offline with warnings as errors and shows what it must.

The build (``python -m sphinx -W --keep-going``) fails on a broken cross-reference (``nitpicky``),
a docstring that is not valid reStructuredText, or a page that cannot be read. The checks below read
the built HTML: every public name has an entry, the LSTM page has its equations, parameters and
example, MathJax is served from the site (no CDN), and the results page shows its figures.
"""

from __future__ import annotations

import doctest
import importlib
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def build_site(out: pathlib.Path) -> pathlib.Path:
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d"]
    cmd += [str(out / ".doctrees"), str(DOCS), str(out)]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"the docs build failed:\n{run.stdout}\n{run.stderr}"
    return out


def _subpackages_with_all():
    sys.path.insert(0, str(DOCS))
    try:
        conf = importlib.import_module("conf")
    finally:
        sys.path.remove(str(DOCS))
    return conf.public_subpackages()


def _check_every_public_name_has_an_entry(site):
    subpackages = _subpackages_with_all()
    assert {"nn", "data", "train", "diagnostics", "interop", "transfer", "models"} <= set(
        subpackages
    )
    missing = []
    for sub in subpackages:
        page = (site / "api" / f"{sub}.html").read_text()
        module = importlib.import_module(f"seqjax.{sub}")
        missing += [
            f"seqjax.{sub}.{name}"
            for name in module.__all__
            if f'id="seqjax.{sub}.{name}"' not in page
        ]
    assert not missing, f"public names without an entry on the API pages: {missing}"


def _check_lstm_page_has_equations_parameters_and_example(site):
    page = (site / "api" / "nn.html").read_text()
    start = page.index('id="seqjax.nn.LSTM"')
    end = page.find('<dl class="py class">', start)  # the next class on the page
    lstm = page[start : end if end != -1 else len(page)]
    assert r"\sigma(z_{i,t}" in lstm  # the gate equations, typeset by MathJax in the browser
    assert 'class="math' in lstm
    for attribute in ("features", "use_peepholes", "forget_bias", "chrono_max_time"):
        assert attribute in lstm, attribute
    assert "&gt;&gt;&gt;" in lstm and "seq_lengths" in lstm  # the runnable example


def _check_math_and_scripts_are_served_offline(site):
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    fonts = list((site / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
    assert fonts, "MathJax's fonts must be copied into the site"
    remote = []
    for page in site.rglob("*.html"):
        text = page.read_text()
        remote += [
            (page.name, src) for src in re.findall(r'<script[^>]+src="(https?:[^"]+)"', text)
        ]
        remote += [
            (page.name, href) for href in re.findall(r'<link[^>]+href="(https?:[^"]+)"', text)
        ]
    assert not remote, f"pages load from the network: {remote[:5]}"
    nn_page = (site / "api" / "nn.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in nn_page


def _check_results_and_benchmark_pages_show_their_content(site):
    results = (site / "results.html").read_text()
    figures = sorted(p.name for p in (DOCS / "figures").glob("*.png"))
    assert figures
    for figure in figures:
        assert f'src="_images/{figure}"' in results, figure
        assert (site / "_images" / figure).is_file(), figure
    benchmarks = (site / "benchmarks.html").read_text()
    assert "cpu_kernel" in benchmarks and "OptimizedLSTMCell" in benchmarks
    index = (site / "index.html").read_text()
    for target in ("getting-started.html", "api/index.html", "results.html", "benchmarks.html"):
        assert f'href="{target}' in index, target


def test_site_builds_offline_and_shows_what_it_must(tmp_path):
    # One build (about 20 s), then every check on its pages: under `pytest -n 2` the checks stay
    # in this one test, so the site is not built once per worker.
    site = build_site(tmp_path / "html")
    _check_every_public_name_has_an_entry(site)
    _check_lstm_page_has_equations_parameters_and_example(site)
    _check_math_and_scripts_are_served_offline(site)
    _check_results_and_benchmark_pages_show_their_content(site)


def test_no_inventory_is_fetched():
    sys.path.insert(0, str(DOCS))
    try:
        conf = importlib.import_module("conf")
    finally:
        sys.path.remove(str(DOCS))
    assert "sphinx.ext.intersphinx" not in conf.extensions
    assert "sphinx-mathjax-offline" in conf.extensions  # MathJax from the site, not a CDN
    assert conf.nitpicky  # a broken cross-reference is a warning, so an error with -W


def test_getting_started_examples_run():
    failed, attempted = doctest.testfile(
        str(DOCS / "getting-started.md"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert attempted >= 10
    assert failed == 0


def test_readme_gives_the_docs_command():
    readme = (ROOT / "README.md").read_text()
    assert "python -m sphinx -W --keep-going -b html docs docs/_build/html" in readme
