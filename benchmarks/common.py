"""What the benchmark scripts share: loading an experiment file, naming the machine, and writing
a section of benchmarks/RESULTS.md between its markers."""
import importlib.util
import os
import platform
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, 'RESULTS.md')


def load_config(path):
  """get_config() of an experiments/*.py file."""
  spec = importlib.util.spec_from_file_location('experiment', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def machine():
  """CPU model, cores, jax version, backend and device count, in one line."""
  import jax  # pylint: disable=g-import-not-at-top
  cpu = platform.processor() or platform.machine()
  try:
    with open('/proc/cpuinfo') as f:
      cpu = next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
  except (OSError, StopIteration):
    pass
  return (f'{cpu}, {os.cpu_count()} cores; jax {jax.__version__}, backend '
          f'{jax.default_backend()}, {jax.device_count()} device(s)')


def write_section(begin: str, end: str, table: str, path: str = RESULTS) -> None:
  """Replaces the text between the `begin` and `end` markers of `path` (appends if absent).

  `table` includes both markers."""
  text = open(path).read() if os.path.exists(path) else '# Benchmark results\n\n'
  if begin in text:
    text = text[:text.index(begin)] + table + text[text.index(end) + len(end):]
  else:
    text = text.rstrip('\n') + '\n\n' + table + '\n'
  with open(path, 'w') as f:
    f.write(text)


def mean_se(values):
  """(mean, standard error of the mean) of a list of numbers (s.e. 0 for one value)."""
  m = statistics.mean(values)
  se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
  return m, se


def cell(values, fmt: str) -> str:
  """A table cell: the one value, or mean ± standard error of the mean over seeds."""
  m, se = mean_se(values)
  return format(m, fmt) if len(values) == 1 else f'{format(m, fmt)} ± {format(se, fmt)}'


def single_threaded(core=None):
  """Makes this (fresh, jax-free) process run XLA on one thread, pinned to `core` if given."""
  os.environ['XLA_FLAGS'] = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
  if core is not None and hasattr(os, 'sched_setaffinity'):
    os.sched_setaffinity(0, {core})


def train_toy(config, workdir, overwrite=False):
  """train_and_evaluate(config) quietly; returns (first eval record, wall seconds)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  from gan_jax import tasks  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  result = tasks.train_and_evaluate(config, workdir, overwrite=overwrite, log=lambda m: None)
  return result['eval'][0], time.perf_counter() - start
