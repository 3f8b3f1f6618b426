"""8 simulated CPU devices for every test (set before JAX is imported), quiet orbax logs."""
import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import jax  # noqa: E402
from absl import logging  # noqa: E402

logging.set_verbosity(logging.WARNING)
assert jax.device_count() == 8, 'tests expect 8 simulated devices'
