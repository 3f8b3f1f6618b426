"""What the benchmark scripts share: loading an experiment file, naming the machine, and writing
a section of benchmarks/RESULTS.md between its markers."""
import importlib.util
import os
import platform

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
