"""README's test command is exactly what CI runs, and the main command names a real module."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_commands = [b.strip() for b in _bash_blocks(readme) if "pytest" in b]
    assert test_commands, "README.md must give a test command in a bash block"
    assert test_commands[0] in ci.splitlines()


def test_main_command_module_exists():
    readme = (ROOT / "README.md").read_text()
    main = next(b for b in _bash_blocks(readme) if "python -m experiments" in b)
    module = re.search(r"python -m (experiments[\w.]*)", main).group(1)
    assert (ROOT / (module.replace(".", "/") + ".py")).exists()
