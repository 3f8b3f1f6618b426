"""Data parallelism by the book: a 1-D `data` mesh, replicated state, batch-sharded data.

This is the only module that knows about devices; the math (losses, penalties, models, steps)
never names a mesh or an axis. Under jit with these shardings, XLA inserts the gradient
all-reduces itself, and BatchNorm sees the global batch.
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named 'data' over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the mesh, other axes whole."""
  return NamedSharding(mesh, P(DATA_AXIS))


def batch_constraint(mesh: Mesh):
  """x -> x constrained to be split along its leading axis; for use inside jit."""
  sharding = batch_sharded(mesh)
  return lambda x: jax.lax.with_sharding_constraint(x, sharding)
