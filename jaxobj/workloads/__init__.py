"""What configs train on: synthetic data sets and small Flax NNX models.

- :mod:`~jaxobj.workloads.data`: synthetic data sets (nothing downloaded),
  :data:`~jaxobj.workloads.data.DATASETS` by name;
- :mod:`~jaxobj.workloads.models`: small models (MLP, CNN, dual encoder, VAE),
  :data:`~jaxobj.workloads.models.MODELS` by name;
- :mod:`~jaxobj.workloads.post_training`: a tiny causal language model that
  learns to reverse digit strings by fused cross-entropy, DPO and GRPO (the
  post-training example of ``notebooks/07_post_training.ipynb``).

Both :mod:`jaxobj.config` (which checks a config's ``data:`` and ``model:``
sections against these generators' and classes' signatures) and
:mod:`jaxobj.train` (which builds them) import this package; it imports
neither of them. Importing its modules starts no JAX backend. The package
imports neither module itself: the models need Flax, which a config without a
``model:`` section (a comparison) never loads.
"""
