"""The README's Python examples run as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run():
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
  runnable = [b for b in blocks if not b.lstrip().startswith("huber_loss(")]  # signature only
  assert len(runnable) >= 2
  namespace: dict = {}
  for block in runnable:
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
  assert namespace["per_delta"].shape == (3,)
  assert set(namespace["terms"]) == {"fit", "decay"}
