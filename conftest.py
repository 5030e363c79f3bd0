"""Root pytest configuration: shared by the test suite and the docstring examples."""

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _short_floats():
  # Docstring examples print arrays; four significant decimals keep them
  # readable and stable across XLA versions.
  with np.printoptions(precision=4, suppress=True):
    yield
