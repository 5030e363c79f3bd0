"""The registered accuracies against NumPy (the contract on unusual inputs is checked
for every metric by test_conformance_inputs.py)."""

import numpy as np
import pytest

import jaxobj
from jaxobj import registry


def test_metrics_are_registered_metrics():
  for name, family in (
    ("accuracy", "classification"),
    ("balanced_accuracy", "classification"),
    ("retrieval_accuracy", "contrastive"),
  ):
    spec = registry.get(name)
    assert spec.kind == "metric" and spec.family == family
    assert spec.fn is getattr(jaxobj, name)


def test_metrics_match_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(40, 3)).astype(np.float32)
  labels = rng.integers(0, 3, 40)
  pred = logits.argmax(-1)
  assert float(jaxobj.accuracy(logits, labels)) == pytest.approx(np.mean(pred == labels))
  recalls = [np.mean(pred[labels == k] == k) for k in range(3)]
  assert float(jaxobj.balanced_accuracy(logits, labels)) == pytest.approx(np.mean(recalls))
  mask = np.arange(40) < 30
  assert float(jaxobj.accuracy(logits, labels, where=mask)) == pytest.approx(
    np.mean(pred[:30] == labels[:30])
  )
  recalls = [np.mean(pred[:30][labels[:30] == k] == k) for k in range(3)]
  assert float(jaxobj.balanced_accuracy(logits, labels, where=mask)) == pytest.approx(
    np.mean(recalls)
  )
  w = rng.uniform(size=40).astype(np.float32)
  assert float(jaxobj.accuracy(logits, labels, weights=w)) == pytest.approx(
    np.sum(w * (pred == labels)) / np.sum(w), rel=1e-5
  )
  assert float(jaxobj.accuracy(logits, labels, reduction="sum")) == np.sum(pred == labels)
  assert float(jaxobj.accuracy(logits[:, 0], (logits[:, 0] > 0).astype(int))) == 1.0
  emb = rng.normal(size=(6, 4)).astype(np.float32)
  assert float(jaxobj.retrieval_accuracy(emb, 2.0 * emb)) == 1.0
  assert float(jaxobj.retrieval_accuracy(emb, np.roll(emb, 1, axis=0))) == 0.0
  with pytest.raises(ValueError, match="labels"):
    jaxobj.accuracy(logits, labels[:5])


def test_accuracy_takes_extra_batch_axes():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(4, 5, 3)).astype(np.float32)
  labels = rng.integers(0, 3, (4, 5))
  hits = np.asarray(jaxobj.accuracy(logits, labels, reduction="none"))
  np.testing.assert_array_equal(hits, logits.argmax(-1) == labels)
  recalls = [np.mean(logits.argmax(-1)[labels == k] == k) for k in range(3)]
  assert float(jaxobj.balanced_accuracy(logits, labels)) == pytest.approx(np.mean(recalls))


def test_majority_classifier_is_told_apart():
  labels = np.array([0] * 9 + [1])
  logits = np.tile(np.array([[1.0, 0.0]], np.float32), (10, 1))
  assert float(jaxobj.accuracy(logits, labels)) == pytest.approx(0.9)
  assert float(jaxobj.balanced_accuracy(logits, labels)) == pytest.approx(0.5)
