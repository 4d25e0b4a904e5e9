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

That price holds only for kernels in numba's on-disk cache. A kernel that is not
(a fresh clone before ``make install`` warmed it, or ``kernels.py`` changed since)
compiles on its first call, which costs seconds: 0.2 to 26 s of CPU each, 74 s for
all of those a first index used to compile. Work that names its kernel is priced
against that kernel's own compile time (:data:`COMPILE_NS`) when it is not cached,
so a first index of a small corpus runs numpy instead of compiling.
"""

from __future__ import annotations

import sys

KERNEL_LOAD_NS = 5e8
_spent_ns = 0.0

#: CPU time numba takes to compile each kernel that has a numpy twin, with an empty
#: cache (bench/compile.py on the 2-vCPU dev VM; the helpers it inlines included).
COMPILE_NS = {
    "search_batch": 20e9,  # parallel; 1.4x since it reads the half-tables (ball_halves): 48-59 -> 70-82 s wall, 2 cold runs each, load 3.6
    "join_shortlists": 4e9,
    "rerank_batch": 26e9,  # parallel
    "count_ascii_words": 1e9,
    "ascii_word_ids": 1.2e9,
    "counts_times": 0.2e9,
    "shared_bit_scores": 2.5e9,
}
_spent_compiling_ns: dict[str, float] = {}  # numpy work done instead of compiling, by kernel
_cached: dict[str, bool] = {}


def use_kernels(cost_ns: float, kernel: str | None = None) -> bool:
    """Whether to run work estimated at ``cost_ns`` without the kernels on the kernels
    (on ``kernel``: priced at its compile time while numba's cache lacks it)."""
    global _spent_ns
    if "semhash.kernels" not in sys.modules and _spent_ns + cost_ns <= KERNEL_LOAD_NS:
        _spent_ns += cost_ns
        return False
    if kernel is None or _ready(kernel):
        return True
    spent = _spent_compiling_ns.get(kernel, 0.0) + cost_ns
    if spent > COMPILE_NS[kernel]:
        return True
    _spent_compiling_ns[kernel] = spent
    return False


def _ready(name: str) -> bool:
    """Whether kernel ``name`` runs without compiling: loaded in this process already,
    or in numba's on-disk cache for the current source of ``semhash.kernels``."""
    dispatcher = getattr(_load(), name)
    if not hasattr(dispatcher, "signatures") or dispatcher.signatures:  # NUMBA_DISABLE_JIT; loaded
        return True
    if name not in _cached:
        try:  # numba's own check: an index of cached overloads stamped with this source
            _cached[name] = bool(dispatcher._cache._cache_file._load_index())
        except (AttributeError, OSError, ValueError):  # another numba: price it as before
            _cached[name] = True
    return _cached[name]


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
        from numba.core.registry import cpu_target

        from semhash import kernels as loaded

        # The kernels compile (or load) on first call: set the target up now, unprobed.
        cpu_target.target_context.refresh()
    finally:
        sys.modules.pop(probe, None)
    return loaded


class _Kernels:
    """``semhash.kernels``, imported on first attribute access (``lazy.kernels.topk_scan``)."""

    def __getattr__(self, name):
        return getattr(_load(), name)


kernels = _Kernels()
