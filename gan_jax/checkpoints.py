"""Orbax checkpoints of the whole GANState: save every N steps keeping K, restore the latest.

Saves are asynchronous: `save` returns once the state is on the host (~20 ms for a 25 MB DCGAN
state on CPU) and orbax writes it in a background thread while training goes on; the next save,
a restore and `close` wait for it. The loop's next call donates the state's buffers meanwhile:
on accelerators the host copy is a real copy; on CPU it is a view of each buffer, and the runtime
does not donate a buffer that a view still references (tests/test_train.py checks the checkpoint
holds the saved state). Restores take the template's shardings, so the per-array sharding files
orbax writes by default (~30% of a save's CPU time) are left out.

A checkpoint that cannot be read (a crash mid-write, a truncated file) is reported, moved aside to
`checkpoints_unreadable/` (kept for inspection, out of orbax's way), and the previous one is used.
"""
import os
import shutil

import jax
import orbax.checkpoint as ocp


def _type_handlers():
  """orbax's handler for the jax.Arrays a training state holds, without the sharding file."""
  return ocp.type_handlers.create_type_handler_registry(
      (jax.Array, ocp.type_handlers.ArrayHandler(enable_write_sharding_file=False)))


class Checkpoints:
  """The checkpoints of one workdir."""

  def __init__(self, directory: str, keep: int):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        item_handlers=ocp.PyTreeCheckpointHandler(type_handler_registry=_type_handlers()),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=True))

  def steps(self):
    """The steps saved, the one being written included."""
    return sorted(self.manager.all_steps())

  def save(self, state) -> None:
    """Starts writing `state` (a collective in multi-host runs); returns before the write ends."""
    step = int(jax.device_get(state.step))
    if step in self.manager.all_steps():
      return
    self.manager.save(step, args=ocp.args.PyTreeSave(state), force=True)

  def restore_latest(self, template, log=print):
    """The newest readable checkpoint, restored with `template`'s shapes and shardings, or None."""
    self.wait()
    args = ocp.args.PyTreeRestore(
        jax.tree.map(ocp.utils.to_shape_dtype_struct, template),
        restore_args=ocp.checkpoint_utils.construct_restore_args(template))
    for step in reversed(self.steps()):
      try:
        return self.manager.restore(step, args=args)
      except Exception as e:  # orbax raises many types for damaged files
        aside = os.path.join(os.path.dirname(self.directory), 'checkpoints_unreadable', str(step))
        log(f'warning: the checkpoint of step {step} in {self.directory} is unreadable '
            f'({type(e).__name__}: {str(e).splitlines()[0][:200]}); moved it to {aside} and '
            f'falling back to the previous one')
        os.makedirs(os.path.dirname(aside), exist_ok=True)
        shutil.rmtree(aside, ignore_errors=True)
        shutil.move(os.path.join(self.directory, str(step)), aside)
        self.manager.reload()
    return None

  def wait(self) -> None:
    """Blocks until the write in flight, if any, is on disk."""
    self.manager.wait_until_finished()

  def close(self):
    """Waits for the write in flight, then releases orbax's threads."""
    self.wait()
    self.manager.close()
