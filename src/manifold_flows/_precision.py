"""The precision of matrix products: where float32 products must be exact.

XLA computes float32 matrix products at reduced precision on some accelerators unless told
otherwise (TF32, 10-bit mantissas, on recent NVIDIA GPUs: relative errors around 1e-3 per
product). The library decides per kind of computation:

- geometry, group actions, energies and everything that feeds a log-density (the flow's field
  when it is integrated for sampling or `log_prob`, the divergence, the likelihood audit, the
  known-answer fields): `EXACT`, full precision of the dtype; a group law or a log q that is
  off by 1e-3 is wrong, not approximate;
- training the field (the flow-matching loss and its gradient): JAX's default, so TF32 where the
  hardware has it. The loss is a noisy stochastic objective; rounding of that size is far below
  its noise and TF32 is several times faster.

CPUs ignore the setting, so CPU results are the same either way; `tests/test_precision.py`
reproduces TF32 products on a CPU to keep the choices above from regressing.
"""

import jax

#: Full-precision products for computations whose result must be exact to the dtype.
EXACT = jax.lax.Precision.HIGHEST

#: The name of `EXACT` for `jax.default_matmul_precision` (a trace-time context).
EXACT_NAME = "highest"
