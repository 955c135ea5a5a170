"""Build hook: copy the shipped top-level folders into the wheel as package data (``lowvalue/_shipped/``).

Everything else about the package is declared in ``pyproject.toml``. The folders stay in git once, at the top of the
repository; an editable install reads them there (see ``lowvalue/shipped.py``).
"""

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = next(ast.literal_eval(node.value) for node in ast.parse((HERE / "lowvalue" / "shipped.py").read_text()).body
               if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SHIPPED")
"""The folders that ship: read from ``lowvalue/shipped.py`` (one list), without importing the package."""


class BuildWithShipped(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders
        for name in SHIPPED:
            src, dst = HERE / name, Path(self.build_lib) / "lowvalue" / "_shipped" / name
            if not src.is_dir():
                raise FileNotFoundError(f"{src}: a shipped folder is missing from the source tree")
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", ".*"))


setup(cmdclass={"build_py": BuildWithShipped})
