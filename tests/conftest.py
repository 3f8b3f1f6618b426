"""8 simulated CPU devices for every test (set before JAX is imported), quiet orbax logs."""
import os
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# A fresh cache for the session (the digit classifier, real statistics): hermetic tests. The
# digit classifier's test trains it there once; later tests load it.
os.environ['GAN_JAX_CACHE'] = tempfile.mkdtemp(prefix='gan_jax_test_cache_')

# XLA's persistent compilation cache, shared by the session's workers and the subprocesses the
# tests start: the many tests that compile the same program (every resume, every rerun of one
# config) compile it once. A fresh directory per session, so no test sees an older build's cache.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(
    tempfile.gettempdir(),
    f'gan_jax_xla_cache_{os.environ.get("PYTEST_XDIST_TESTRUNUID", os.getpid())}'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')

import jax  # noqa: E402
from absl import logging  # noqa: E402

logging.set_verbosity(logging.WARNING)
assert jax.device_count() == 8, 'tests expect 8 simulated devices'
