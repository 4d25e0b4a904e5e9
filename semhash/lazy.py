"""Load the numba kernels only once they pay for themselves (rent or buy).

Importing numba and loading semhash's cached kernels costs about 0.5 s per process
(numba's import, then the first cached load sets up its typing context: 0.15-0.25
s plus 0.35-0.52 s measured on the 2-vCPU dev VM; see :func:`_load`). numpy and
Python do the same work with nothing to load, only slower. A process that answers
one query should never pay the load; one that encodes a million documents must.

:func:`use_kernels` decides for each piece of work, given what it would cost
without the kernels: no while the running total of such costs stays within the
load cost, yes from then on, and always once the kernels are loaded. This is the
rent-or-buy rule: never more than twice the cost of the better choice made in
hindsight. Callers give the same answer either way; only the speed differs.
"""

from __future__ import annotations

import sys

KERNEL_LOAD_NS = 5e8
_spent_ns = 0.0


def use_kernels(cost_ns: float) -> bool:
    """Whether to run work estimated at ``cost_ns`` without the kernels on the kernels."""
    global _spent_ns
    if "semhash.kernels" in sys.modules or _spent_ns + cost_ns > KERNEL_LOAD_NS:
        return True
    _spent_ns += cost_ns
    return False


#: Load the kernels without numba's probe for scipy's BLAS (:func:`_load`). Set by
#: the command line, whose process is its own: a library leaves its host's imports be.
skip_blas_probe = False


def _load():
    """``semhash.kernels``, loaded without numba's BLAS probe if :data:`skip_blas_probe`.

    The first kernel numba loads sets up its CPU target, whose numpy support checks
    for BLAS by importing scipy.linalg: 0.33 s of a 1.67 s load (median of 10
    processes). semhash's kernels make no BLAS call, so in a process that has not
    imported scipy.linalg yet (a query process) the probe may fail at once. numba's
    own ``np.dot`` still imports scipy when it compiles one; only its
    ``np.convolve``/``np.correlate`` of floats would run as a plain loop here. (A
    thread importing scipy.linalg meanwhile would fail: hence the flag.)
    """
    probe = "scipy.linalg.cython_blas"
    if not skip_blas_probe or "semhash.kernels" in sys.modules or probe in sys.modules:
        from semhash import kernels as loaded

        return loaded
    sys.modules[probe] = None  # an import of None fails without importing its parents
    try:
        from semhash import kernels as loaded
    finally:
        sys.modules.pop(probe, None)
    return loaded


class _Kernels:
    """``semhash.kernels``, imported on first attribute access (``lazy.kernels.topk_scan``)."""

    def __getattr__(self, name):
        return getattr(_load(), name)


kernels = _Kernels()
