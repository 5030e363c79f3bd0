"""Root pytest configuration: shared by the test suite and the docstring examples."""

import os

import jax
import numpy as np
import pytest

# A script the multi-process tests launch (it reads its output folder from
# sys.argv when imported), not a module for --doctest-modules to import.
collect_ignore = ["tests/multiprocess_worker.py"]

# The suite calls each loss eagerly in many one-off variants; compiling them
# (jaxobj.registry.eager_dispatch) costs more CI time than it saves, so they run
# op by op, as written. tests/test_eager_dispatch.py turns the dispatch on.
os.environ.setdefault("JAXOBJ_EAGER_DISPATCH", "0")


@pytest.fixture(autouse=True)
def _short_floats():
  # Docstring examples print arrays; four significant decimals keep them
  # readable and stable across XLA versions.
  with np.printoptions(precision=4, suppress=True):
    yield


@pytest.fixture(autouse=True)
def _structure_compiles_fast(request):
  # Tests marked `structure` check the contract's structure once per registered loss
  # (masks equal slices, sums and counts, tracing, split batches, second derivatives
  # against float64 differences): XLA compiles them in about a third less CPU without
  # its backend optimizations, which are not what those checks are about. Values and
  # gradients at the extremes (huge logits, -inf, bfloat16) are checked by unmarked
  # tests, compiled as users compile: the optimization level can change them.
  if request.node.get_closest_marker("structure") is None:
    yield
    return
  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", before)
