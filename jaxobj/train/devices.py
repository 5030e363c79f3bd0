"""Host devices: asking JAX for several CPU devices before it starts.

Importing this module does not start JAX's backends, so the CLI can call
:func:`request_host_devices` with a config's ``train.host_devices`` first.
"""

from __future__ import annotations

import os

import jax

from jaxobj.config.experiment import MAX_HOST_DEVICES

__all__ = ["MAX_HOST_DEVICES", "request_host_devices"]


def request_host_devices(n: int | None) -> bool:
  """Asks JAX for ``n`` CPU devices; only possible before JAX starts its backends.

  Returns whether the request was applied: ``False`` for ``n < 2``, when JAX
  has started already, or when ``XLA_FLAGS`` sets a device count itself. Only
  the CPU platform is affected; an accelerator keeps its own devices.

  Raises:
    ValueError: ``n`` is more than :data:`MAX_HOST_DEVICES`.
  """
  if n is not None and n > MAX_HOST_DEVICES:
    raise ValueError(f"{n} host devices asked for; the limit is {MAX_HOST_DEVICES}.")
  if not n or n < 2 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return False
  try:
    jax.config.update("jax_num_cpu_devices", int(n))
  except RuntimeError:
    return False
  return True
