"""Multi-host training on JAX's multi-controller runtime: one process per host, one program.

`initialize(config)` is the one call: it starts `jax.distributed` when a cluster is configured
(config.distributed: coordinator_address, num_processes, process_id, local_device_ids) or
detected in the environment (SLURM with more than one task, Cloud TPU pod slices, Open MPI,
or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID), and does nothing on one host.
After it, `jax.devices()` lists every device of every process, the mesh of sharding.py spans
them all, each process reads only its share of the data (input_pipeline's `process_index`).
Host arrays become global arrays in one of two ways, both here: `from_process_local` (each
process gives its rows: the training batches) and `put_global` (every process holds the whole
array: eval inputs). Only process 0 writes logs, plots and TensorBoard; orbax checkpoints are
written and restored by all processes together.
"""
import os

import jax
import numpy as np
from jax.experimental import multihost_utils

from gan_jax import configs

ENV = ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID')


def detected_cluster() -> str:
  """The name of the multi-host environment this process runs in, or '' for a single host."""
  if int(os.environ.get('SLURM_NTASKS', '1')) > 1 and 'SLURM_JOB_ID' in os.environ:
    return 'slurm'
  if len(os.environ.get('TPU_WORKER_HOSTNAMES', '').split(',')) > 1:
    return 'tpu_pod'
  if int(os.environ.get('OMPI_COMM_WORLD_SIZE', '1')) > 1:
    return 'mpi'
  if os.environ.get(ENV[0]):
    return 'env'
  return ''


def initialize(config) -> bool:
  """Starts jax.distributed if the config or the environment asks for it; True if it did.

  Must run before anything touches a JAX device. Explicit fields of config.distributed win
  over the environment; SLURM, TPU pods and MPI are left to JAX's own cluster detection.
  """
  d = config.get('distributed') or {}
  address = d.get('coordinator_address') or os.environ.get(ENV[0])
  cluster = detected_cluster()
  if not address and cluster in ('', 'env'):
    return False
  if jax.distributed.is_initialized():
    return True
  kwargs = {}
  if address:
    num = d.get('num_processes') or os.environ.get(ENV[1])
    pid = d.get('process_id')
    pid = os.environ.get(ENV[2]) if pid is None else pid
    if num is None or pid is None:
      raise configs.ConfigError(
          f'config.distributed.coordinator_address={address!r} also needs '
          'config.distributed.num_processes and config.distributed.process_id (or the '
          f'environment variables {ENV[1]} and {ENV[2]})')
    kwargs = dict(coordinator_address=address, num_processes=int(num), process_id=int(pid))
  if d.get('local_device_ids') is not None:
    kwargs['local_device_ids'] = list(d.get('local_device_ids'))
  jax.distributed.initialize(**kwargs)
  return True


def is_main() -> bool:
  """True in the process that writes logs, plots and TensorBoard (process 0)."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches this point (a no-op on one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def agreed(flag: bool) -> bool:
  """Process 0's value of `flag`, on every process (for branches that run collectives)."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(multihost_utils.broadcast_one_to_all(np.int32(flag)))


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is True on any (e.g. a SIGTERM that reached one host)."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def to_host(x) -> np.ndarray:
  """The whole of a (possibly multi-process) array as numpy, on every process."""
  if jax.process_count() > 1 and not x.is_fully_addressable:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)


def put_global(x: np.ndarray, sharding) -> jax.Array:
  """A host array that every process holds whole, as a global array with `sharding`."""
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def from_process_local(x: np.ndarray, sharding) -> jax.Array:
  """This process's share of a global array (its rows of the sharded axis), as the global array:
  each host passes only what it read (the input pipeline's host-sharded batches)."""
  return jax.make_array_from_process_local_data(sharding, x)
