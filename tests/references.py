"""Float64 reference helpers shared by the per-family value tests."""

import numpy as np


def ref_reduce(values, where=None, weights=None, reduction="mean"):
  """The jaxobj reduction, from its definition: masked entries are 0 and left
  out of the mean; with weights the mean is the weighted mean; an empty
  denominator gives 0."""
  w = np.ones_like(values) if weights is None else np.broadcast_to(weights, values.shape)
  m = np.ones(values.shape, bool) if where is None else np.broadcast_to(where, values.shape)
  v = np.where(m, values * w, 0.0)
  if reduction == "none":
    return v
  if reduction == "sum":
    return v.sum()
  den = (w * m).sum() if weights is not None else m.sum()
  return v.sum() / den if den > 0 else 0.0


RTOL, ATOL = 1e-5, 1e-6  # float32 results against float64 references


def f64(a):
  return np.asarray(a, np.float64)


def close(actual, expected, rtol=RTOL, atol=ATOL):
  """``actual`` (any precision) matches the float64 ``expected``."""
  np.testing.assert_allclose(f64(actual), f64(expected), rtol=rtol, atol=atol)
