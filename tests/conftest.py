"""8 simulated CPU devices for every test (set before JAX is imported), quiet orbax logs."""
import os
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# A fresh cache for the session (the digit classifier, real statistics): hermetic tests. The
# digit classifier's test trains it there once; later tests load it.
os.environ['GAN_JAX_CACHE'] = tempfile.mkdtemp(prefix='gan_jax_test_cache_')

import jax  # noqa: E402
from absl import logging  # noqa: E402

logging.set_verbosity(logging.WARNING)
assert jax.device_count() == 8, 'tests expect 8 simulated devices'
