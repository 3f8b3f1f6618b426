"""Orbax checkpoints of the whole GANState: save every N steps keeping K, restore the latest.

Saves are asynchronous: `save` returns once the state is on the host (~20 ms for a 25 MB DCGAN
state on CPU) and orbax writes it in a background thread while training goes on; the next save,
a restore and `close` wait for it. The loop's next call donates the state's buffers meanwhile:
on accelerators the host copy is a real copy; on CPU it is a view of each buffer, and the runtime
does not donate a buffer that a view still references (tests/test_train.py checks the checkpoint
holds the saved state). Restores take the template's shardings, so the per-array sharding files
orbax writes by default (~30% of a save's CPU time) are left out.

Nothing is lost to a fault:
* a checkpoint that cannot be read (a crash mid-write, a truncated or bit-flipped file) is
  reported, moved aside to `checkpoints_unreadable/STEP` (a new name if that is taken: nothing
  there is ever deleted) and the previous one is used; when every checkpoint is unreadable the
  run stops with an error instead of starting again from step 0;
* a checkpoint that is readable but does not fit the template (another config's networks) is
  an error naming the differing arrays, and stays where it is;
* a background write that fails (a full disk) is noticed at the next loop boundary (`poll`),
  its partial temporary directory removed, and reported with the path and the free space.
"""
import logging
import os
import shutil
import sys

import jax
import orbax.checkpoint as ocp

from gan_jax import configs, workdir as workdir_lib


class _QuietOrbax(logging.Filter):
  """Drops orbax's own error logs (a failed write logs five tracebacks from its threads); the
  failure reaches the user once, as the error `poll` or `wait` raises."""

  def filter(self, record):
    return not (record.levelno >= logging.ERROR and f'{os.sep}orbax{os.sep}' in record.pathname)


class _QuietOrbaxTasks(logging.Filter):
  """Drops asyncio's 'Task exception was never retrieved' for orbax's own write tasks: when a
  write fails, the sibling tasks' errors are logged whenever the garbage collector finds them
  (at exit, at random) — the same failure `poll` or `wait` already raised once."""

  def filter(self, record):
    return not (record.levelno >= logging.ERROR and
                f'{os.sep}orbax{os.sep}' in record.getMessage())


logging.getLogger('absl').addFilter(_QuietOrbax())
logging.getLogger('asyncio').addFilter(_QuietOrbaxTasks())


def _quiet_closed_loop_callbacks(previous=sys.unraisablehook):
  """When a write fails, tensorstore's pending callbacks into orbax's closed asyncio loop each
  print 'Event loop is closed' through sys.unraisablehook; those alone are dropped."""
  def hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError) and
            str(unraisable.exc_value) == 'Event loop is closed'):
      previous(unraisable)

  sys.unraisablehook = hook


_quiet_closed_loop_callbacks()


BEST_DIR = 'checkpoints_best'  # train.keep_best's checkpoint, beside checkpoints/


def _path_names(path) -> str:
  return '.'.join(str(getattr(k, 'name', getattr(k, 'key', getattr(k, 'idx', k)))) for k in path)


def _saved_arrays(tree, prefix=''):
  """{dotted name: (shape, dtype)} of the array metadata in a checkpoint's tree metadata."""
  out = {}
  if isinstance(tree, dict):
    items = tree.items()
  elif isinstance(tree, (list, tuple)):
    items = enumerate(tree)
  else:
    if hasattr(tree, 'shape'):
      out[prefix[:-1]] = (tuple(tree.shape), str(getattr(tree, 'dtype', '')))
    return out
  for k, v in items:
    out.update(_saved_arrays(v, f'{prefix}{k}.'))
  return out


def mismatch(saved: dict, template) -> list:
  """The differences between a checkpoint's arrays and `template`'s, as readable lines."""
  want = {_path_names(p): (tuple(x.shape), str(x.dtype))
          for p, x in jax.tree_util.tree_leaves_with_path(template)}
  lines = [f'{k} is missing from the checkpoint' for k in sorted(set(want) - set(saved))]
  lines += [f'{k} is in the checkpoint but not in this config' for k in sorted(set(saved) -
                                                                              set(want))]
  lines += [f'{k} has shape {saved[k][0]} in the checkpoint, {want[k][0]} in this config'
            for k in sorted(set(want) & set(saved)) if saved[k][0] != want[k][0]]
  return lines


def _type_handlers():
  """orbax's handler for the jax.Arrays a training state holds, without the sharding file."""
  return ocp.type_handlers.create_type_handler_registry(
      (jax.Array, ocp.type_handlers.ArrayHandler(enable_write_sharding_file=False)))


class Checkpoints:
  """The checkpoints of one workdir."""

  def __init__(self, directory: str, keep: int):
    self.directory = os.path.abspath(directory)
    self.keep = keep
    self._writing = None  # the step of the write in flight
    self.manager = self._new_manager()

  def _new_manager(self) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        self.directory,
        item_handlers=ocp.PyTreeCheckpointHandler(type_handler_registry=_type_handlers()),
        options=ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=True,
                                             enable_async_checkpointing=True))

  def steps(self):
    """The steps saved, the one being written included."""
    return sorted(self.manager.all_steps())

  def save(self, state) -> None:
    """Starts writing `state` (a collective in multi-host runs); returns before the write ends.

    A failure of the previous write is raised here (as `RunError`) before a new one starts.
    """
    step = int(jax.device_get(state.step))
    self.wait()
    if step in self.manager.all_steps():
      return
    self._writing = step
    try:
      self.manager.save(step, args=ocp.args.PyTreeSave(state), force=True)
    except Exception as e:  # a synchronous part of the write failed (e.g. no space for the dir)
      self._failed(e)

  def restore_latest(self, template, log=print):
    """The newest readable checkpoint, restored with `template`'s shapes and shardings, or None
    when there is none. Unreadable ones are moved aside (see the module docstring); a readable
    one that does not fit `template` is a ConfigError; all unreadable is a ConfigError."""
    self.wait()
    moved = []
    for step in reversed(self.steps()):
      try:
        saved = _saved_arrays(self.manager.item_metadata(step).tree)
      except Exception as e:  # orbax raises many types for damaged files
        moved.append(self._move_aside(step, e, log))
        continue
      self._check_fits(step, saved, template)
      try:
        return self._restore(step, template)
      except Exception as e:  # pylint: disable=broad-except
        moved.append(self._move_aside(step, e, log))
    if moved:
      raise configs.ConfigError(
          f'every checkpoint in {self.directory} is unreadable (moved to '
          f'{", ".join(moved)}), so there is nothing to resume from; pass --overwrite to start '
          'over (the unreadable copies are kept)')
    return None

  def restore(self, step: int, template):
    """The checkpoint of `step` (which must be saved; an unreadable one raises), restored with
    `template`'s shapes and shardings; one that does not fit `template` is a ConfigError."""
    self.wait()
    if step not in self.steps():
      saved = ', '.join(map(str, self.steps())) or 'none (train first)'
      raise configs.ConfigError(f'--step={step}: {self.directory} has no checkpoint of that '
                                f'step; the saved steps are {saved}')
    self._check_fits(step, _saved_arrays(self.manager.item_metadata(step).tree), template)
    return self._restore(step, template)

  def _check_fits(self, step: int, saved: dict, template) -> None:
    lines = mismatch(saved, template)
    if lines:
      raise configs.ConfigError(
          f'the checkpoint of step {step} in {self.directory} does not fit this config ('
          f'{"; ".join(lines[:3])}{"; ..." if len(lines) > 3 else ""}); nothing was moved: '
          'run it with the config it was trained with (the workdir\'s config.json)')

  def _restore(self, step: int, template):
    # Called after _check_fits: the checkpoint holds exactly the template's arrays. A partial
    # restore then differs only where the template has empty containers the checkpoint lacks
    # (GANState.aux, {} with no stateful switch on, is absent from checkpoints written before it existed).
    args = ocp.args.PyTreeRestore(
        jax.tree.map(ocp.utils.to_shape_dtype_struct, template),
        restore_args=ocp.checkpoint_utils.construct_restore_args(template), partial_restore=True)
    return self.manager.restore(step, args=args)

  def _move_aside(self, step: int, error: Exception, log) -> str:
    """Moves the checkpoint of `step` to checkpoints_unreadable/ under a name not yet taken."""
    root = os.path.join(os.path.dirname(self.directory), 'checkpoints_unreadable')
    aside, n = os.path.join(root, str(step)), 1
    while os.path.exists(aside):
      aside, n = os.path.join(root, f'{step}.{n}'), n + 1
    log(f'warning: the checkpoint of step {step} in {self.directory} is unreadable '
        f'({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ""}); '
        f'moved it to {aside} and falling back to the previous one')
    os.makedirs(root, exist_ok=True)
    shutil.move(os.path.join(self.directory, str(step)), aside)
    self.manager.reload()
    return aside

  def _failed(self, error: Exception):
    """Removes a failed write's temporary files and raises RunError naming path and free space.

    orbax's manager re-raises a failed write at every later wait, so it is replaced by a fresh
    one (the checkpoints on disk are unchanged).
    """
    step, self._writing = self._writing, None
    try:
      self.manager.close()
    except Exception:  # pylint: disable=broad-except  # the failure being reported
      pass
    for name in os.listdir(self.directory) if os.path.isdir(self.directory) else ():
      if name.startswith(f'{step}.') and 'tmp' in name:
        shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
    self.manager = self._new_manager()
    kept = [s for s in self.steps() if s != step]
    text = str(error) or type(error).__name__
    reason = ('no space left on the disk' if 'No space left' in text or 'ENOSPC' in text
              else text.splitlines()[0][:300])
    raise workdir_lib.RunError(
        f'writing the checkpoint of step {step} to {self.directory} failed ({reason}; free '
        f'space there: {workdir_lib.free_space(self.directory)}); its partial files were '
        f'removed and {f"the checkpoint of step {kept[-1]} is kept" if kept else "no checkpoint was saved yet"}. '
        'Free space, then rerun the same command to resume') from None

  def poll(self) -> None:
    """Cheap, at loop boundaries: raises RunError if the background write has failed."""
    if self._writing is not None and not self.manager.is_saving_in_progress():
      self.wait()

  def wait(self) -> None:
    """Blocks until the write in flight, if any, is on disk; RunError if it failed."""
    if self._writing is None:
      return
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      self._failed(e)
    self._writing = None

  def close(self):
    """Waits for the write in flight, then releases orbax's threads (even if the write failed)."""
    try:
      self.wait()
    finally:
      self.manager.close()
