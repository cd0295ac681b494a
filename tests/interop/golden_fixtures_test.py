#!/usr/bin/env python3
"""The golden fixtures are what transformers + PEFT compute today: `tools/make_fixtures.py --check` regenerates
tests/data/fixtures into a temporary folder and compares: bit for bit but for floats' last bits, which torch's
kernels may change on another CPU (within 1e-9 of their scale). Needs torch, transformers and peft (the
versions tools/install-deps.sh --test installs); without them it prints why and exits 77 (skipped)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

try:
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
except ImportError as e:
    print(f"skipped: {e.name} is not installed for {sys.executable} (tools/install-deps.sh --test installs it)")
    sys.exit(77)

sys.exit(subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_fixtures.py"), "--check"]).returncode)
