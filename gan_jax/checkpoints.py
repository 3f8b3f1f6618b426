"""Orbax checkpoints of the whole GANState: save every N steps keeping K, restore the latest.

A checkpoint that cannot be read (a crash mid-write, a truncated file) is reported, moved aside to
`checkpoints_unreadable/` (kept for inspection, out of orbax's way), and the previous one is used.
"""
import os
import shutil

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """The checkpoints of one workdir."""

  def __init__(self, directory: str, keep: int):
    self.directory = os.path.abspath(directory)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=False))

  def steps(self):
    return sorted(self.manager.all_steps())

  def save(self, state) -> None:
    step = int(jax.device_get(state.step))
    if step in self.manager.all_steps():
      return
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
    self.manager.wait_until_finished()

  def restore_latest(self, template, log=print):
    """The newest readable checkpoint, restored with `template`'s shapes and shardings, or None."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    for step in reversed(self.steps()):
      try:
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
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

  def close(self):
    self.manager.close()
