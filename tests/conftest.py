"""8 simulated CPU devices for every test (set before JAX is imported), quiet orbax logs."""
import os
import shutil
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# Everything a session writes outside pytest's tmp_path lives under one fresh directory, which
# the process that made it deletes when the session ends (a session's caches hold gigabytes:
# left behind, a few sessions fill a disk). xdist's workers and the subprocesses the tests start
# inherit it through the environment.
_OWN_ROOT = 'GAN_JAX_TEST_ROOT' not in os.environ
if _OWN_ROOT:
  os.environ['GAN_JAX_TEST_ROOT'] = tempfile.mkdtemp(prefix='gan_jax_test_')
_ROOT = os.environ['GAN_JAX_TEST_ROOT']
# A fresh cache per process (real statistics, image folders): hermetic tests. The digit
# classifier's entry is the session's, shared by its workers (a link into the session
# directory): `load_or_train`'s lock lets the first process that needs it train it (half a
# minute) and the others load it.
os.environ['GAN_JAX_CACHE'] = tempfile.mkdtemp(prefix='cache_', dir=_ROOT)
_DIGITS = os.path.join(_ROOT, 'digit_classifier')
os.makedirs(_DIGITS, exist_ok=True)
os.symlink(_DIGITS, os.path.join(os.environ['GAN_JAX_CACHE'], 'digit_classifier'))
# XLA's persistent compilation cache, shared by the session's workers and the subprocesses the
# tests start: the many tests that compile the same program (every resume, every rerun of one
# config) compile it once. Fresh per session, so no test sees an older build's cache.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(_ROOT, 'xla'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')

import jax  # noqa: E402
from absl import logging  # noqa: E402

logging.set_verbosity(logging.WARNING)
assert jax.device_count() == 8, 'tests expect 8 simulated devices'


def pytest_sessionfinish(session):
  """Deletes this process's cache and, in the process that made it (the controller, whose
  workers have finished), the session's directory."""
  shutil.rmtree(os.environ['GAN_JAX_CACHE'], ignore_errors=True)
  if _OWN_ROOT:
    shutil.rmtree(_ROOT, ignore_errors=True)
