"""The experiments are a folder of the repository, not part of the installed package: put the
repository root on ``sys.path`` so plain ``pytest`` (not only ``python -m pytest``) imports them."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
