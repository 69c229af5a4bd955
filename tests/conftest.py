"""Test-suite setup: float64, strict dtype promotion, Hypothesis profiles, PRNG keys, markers."""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

# Float64 and strict promotion for the whole suite (STYLE.md rule 11). Strict promotion turns an
# accidental float32/float64 or int/float mix inside the library into an error instead of a
# silent upcast.
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
# On a CPU the suite compiles about a thousand small programs and runs each briefly: XLA's
# backend optimisation (LLVM) costs more than it saves there (tests/test_flow_mcmc.py: 125 s
# without it against 142 s with it, on 2 cores). MFLOWS_TEST_OPTIMIZED=1 runs the suite on
# fully optimised programs, as the library runs outside the tests; accelerators always do.
if os.environ.get("MFLOWS_TEST_OPTIMIZED") != "1" and jax.default_backend() == "cpu":
    jax.config.update("jax_disable_most_optimizations", True)

settings.register_profile(
    "dev",
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _has_accelerator() -> bool:
    return any(d.platform != "cpu" for d in jax.devices())


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a GPU/accelerator backend; none is present")
    run_slow = os.environ.get("MFLOWS_RUN_SLOW") == "1"
    skip_slow = pytest.mark.skip(reason="slow validation run; set MFLOWS_RUN_SLOW=1 to run it")
    has_acc = _has_accelerator()
    for item in items:
        if "gpu" in item.keywords and not has_acc:
            item.add_marker(skip_gpu)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)


@pytest.fixture
def key(request):
    """A fresh PRNG key, different for every test (derived from the test's node id)."""
    import zlib

    return jax.random.key(zlib.crc32(request.node.nodeid.encode()))
