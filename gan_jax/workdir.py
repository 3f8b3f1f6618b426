"""A run's workdir: who owns it (a lock), what run it holds (config.json), and how it starts.

* `Lock(workdir, mode)`: one process owns a workdir for the whole of a train, eval or sample
  (an exclusive `flock` on `workdir/.lock`, released by the kernel when the process dies, so a
  killed run never leaves a stale lock; the file is removed on a clean exit). A second process
  gets one `ConfigError` naming the holder's pid, host, mode and start time.
* `config.json` is the run's identity. `recorded_config` reads it (a corrupt one is an error,
  never a reason to start over), `refuse_other_run` names the fields a config differs in, and
  `resolve` fills in the quantities recorded at the run's first start (the length of a decaying
  lr schedule), so that raising `train.steps` on resume does not re-lay the schedule.
* `prepare` deletes the old run only when told to overwrite, and writes config.json atomically.
* `run.json` records the device and process counts: resume is bit for bit only on the same
  count, and a change is said in one line.

Writes are atomic (a temporary file, then `os.replace`): a kill or a full disk leaves the old file
or the new one, never half of one.
"""
import datetime
import errno
import fcntl
import json
import os
import shutil
import socket

import ml_collections

from gan_jax import configs

LOCK_FILE = '.lock'
# Fields that may change between the runs of one workdir: they change how long or how often,
# not what is computed (steps_per_call = k equals k single calls).
RESUMABLE_FIELDS = ('train.steps', 'train.steps_per_call', 'train.log_every', 'train.eval_every',
                    'train.checkpoint_every', 'train.keep', 'train.keep_best', 'train.dtype',
                    'model.conv_impl', 'data.workers',
                    'eval.',
                    'distributed.', 'logging.')
# What a run writes, and what --overwrite deletes (checkpoints_unreadable/ is kept: nothing
# moved there is ever deleted by gan_jax).
RUN_DIRS = ('checkpoints', 'checkpoints_best', 'samples')
RUN_FILES = ('metrics.jsonl', 'run.json')
RUN_PREFIXES = ('events.out.tfevents', 'eval_', 'samples_', 'interpolation_')  # files or dirs


class RunError(RuntimeError):
  """A fault while a run was going (a full disk, a failed checkpoint write): the message says
  what was kept and what to do."""


def free_space(path: str) -> str:
  """The free space of the disk holding `path` (or its nearest existing parent), in words."""
  while path and not os.path.exists(path):
    path = os.path.dirname(path)
  try:
    free = shutil.disk_usage(path or '.').free
  except OSError:
    return 'unknown'
  return f'{free / 2 ** 20:.1f} MiB'


def os_error(e: OSError, what: str, path: str) -> str:
  """One sentence for an OSError while doing `what` to `path`, with the disk's free space."""
  reason = e.strerror or str(e)
  hint = ''
  if e.errno == errno.ENOSPC:
    hint = f' (free space there: {free_space(path)})'
  elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
    hint = ' (the filesystem is read-only or not writable by this user)'
  return f'{what} {path} failed: {reason}{hint}'


def write_atomic(path: str, data) -> None:
  """Writes `data` (str or bytes) to `path` through a temporary file in the same directory and
  os.replace."""
  tmp = f'{path}.tmp{os.getpid()}'
  try:
    with open(tmp, 'wb' if isinstance(data, bytes) else 'w') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def make_workdir(workdir: str) -> None:
  """Creates `workdir` (and its parents); a ConfigError if that is a file or cannot be written."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise configs.ConfigError(f'--workdir={workdir} is a file, not a directory; give a '
                              'directory for the run')
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise configs.ConfigError(os_error(e, '--workdir: creating', workdir) +
                              '; give a writable --workdir') from None


class Lock:
  """Exclusive ownership of a workdir (see the module docstring); a context manager."""

  def __init__(self, workdir: str, mode: str, create: bool = True):
    self.workdir, self.mode, self.create = workdir, mode, create
    self._fd = None

  def __enter__(self):
    if self.create:
      make_workdir(self.workdir)
    elif not os.path.isdir(self.workdir):
      raise configs.ConfigError(f'--workdir={self.workdir} does not exist; give the workdir '
                                'of a run')
    path = self.path = os.path.join(self.workdir, LOCK_FILE)
    while True:
      try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
      except OSError as e:
        raise configs.ConfigError(os_error(e, '--workdir: writing', path) +
                                  '; give a writable --workdir') from None
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError:
        holder = os.read(fd, 4096).decode(errors='replace').strip()
        os.close(fd)
        try:
          h = json.loads(holder)
          who = f'process {h["pid"]} on {h["host"]} (--mode={h["mode"]}, since {h["since"]})'
        except (ValueError, KeyError, TypeError):
          who = 'another process'
        raise configs.ConfigError(f'workdir {self.workdir} is in use by {who}; wait for it to '
                                  'end, or use another --workdir') from None
      try:  # the holder before us may have removed the file between our open and our flock
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
          break
      except FileNotFoundError:
        pass
      os.close(fd)
    info = {'pid': os.getpid(), 'host': socket.gethostname(), 'mode': self.mode,
            'since': datetime.datetime.now().isoformat(timespec='seconds')}
    try:
      os.ftruncate(fd, 0)
      os.pwrite(fd, json.dumps(info).encode() + b'\n', 0)
    except OSError as e:
      os.close(fd)
      raise configs.ConfigError(os_error(e, '--workdir: writing', path) +
                                '; give a writable --workdir') from None
    self._fd = fd
    return self

  def __exit__(self, *exc):
    if self._fd is not None:
      try:
        os.remove(self.path)  # while still held: a process that opened it retries (see above)
      except OSError:
        pass
      os.close(self._fd)  # releases the flock
      self._fd = None


def recorded_config(workdir: str):
  """The dict in `workdir`/config.json, or None if there is none; a ConfigError if corrupt."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      recorded = json.load(f)
    if not isinstance(recorded, dict):
      raise ValueError('not a JSON object')
    return recorded
  except (OSError, ValueError) as e:
    raise configs.ConfigError(
        f'{path} is unreadable ({e}): it is the identity of the run in {workdir}, so nothing '
        'was touched; restore it, or pass --overwrite to delete that run and start over'
    ) from None


def flatten(d, prefix='') -> dict:
  """A nested dict as {dotted name: leaf}."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def differences(old: dict, new: dict, ignore=RESUMABLE_FIELDS) -> list:
  """Dotted names of the fields that differ, leaving out those of `ignore` (a name ending in '.'
  stands for its whole group) and fields `old` does not have (added to gan_jax after that run
  started, with defaults that keep the old behaviour)."""
  a, b = flatten(old), flatten(new)
  keys = sorted(set(a))
  return [k for k in keys
          if a.get(k) != b.get(k) and not any(k == f or (f.endswith('.') and k.startswith(f))
                                               for f in ignore)]


def refuse_other_run(workdir: str, recorded, config, what: str = 'use another --workdir, or '
                     'pass --overwrite to delete that run and start over') -> None:
  """A ConfigError if the run `recorded` in `workdir` differs from `config` in more than
  RESUMABLE_FIELDS; `what` says how to proceed."""
  if recorded is None:
    return
  diff = differences(recorded, configs.to_dict(config))
  if diff:
    raise configs.ConfigError(
        f'workdir {workdir} holds a run of another config (it differs in '
        f'{", ".join(diff[:5])}{" ..." if len(diff) > 5 else ""}); {what}')


def resolve(config, recorded):
  """`config` with the quantities fixed at the run's first start filled in: the length of a
  decaying lr schedule (`optim.decay_steps`, None = `train.steps` of the first start; left None
  under a constant schedule).

  Returns a copy; `recorded` (config.json's dict, or None for a new run) wins where `config`
  leaves the quantity unset.
  """
  config = config.copy_and_resolve_references()
  optim = config.get('optim')
  if (optim is None or 'decay_steps' not in optim or optim.get('decay_steps') is not None or
      optim.get('lr_schedule', 'constant') == 'constant'):
    return config
  steps = (recorded or {}).get('optim', {}).get('decay_steps')
  with config.unlocked():
    config.optim.decay_steps = int(steps if steps is not None else config.train.steps)
  return config


def run_config(workdir: str, config, use: str):
  """The config of the run in `workdir`, for a mode that `use`s it (e.g. 'evaluate'): its
  config.json (as a ConfigDict) when `config` is None, else `config`, which must match it but in
  RESUMABLE_FIELDS; with the quantities fixed at its first start (`resolve`)."""
  recorded = recorded_config(workdir)
  if recorded is None:
    raise configs.ConfigError(f'workdir {workdir} holds no run (it has no config.json); '
                              'train first')
  config = from_json(recorded) if config is None else config
  refuse_other_run(workdir, recorded, config,
                   what=f'{use} it with the config it was trained with (its config.json): the '
                        'same --config and overrides, or leave out --config')
  return resolve(config, recorded)


def from_json(d):
  """A config dict read from JSON as a ConfigDict, lists back to tuples (configs hold tuples)."""
  def tuples(v):
    if isinstance(v, dict):
      return {k: tuples(x) for k, x in v.items()}
    if isinstance(v, list):
      return tuple(tuples(x) for x in v)
    return v
  return ml_collections.ConfigDict(tuples(d))


def prepare(workdir: str, config, recorded, overwrite: bool, log=print) -> None:
  """Makes `workdir` ready for `config`: refuses a workdir of another run unless `overwrite`,
  which deletes that run's files (never checkpoints_unreadable/); writes config.json."""
  if not overwrite:
    refuse_other_run(workdir, recorded, config)
  try:
    if overwrite:
      removed = []
      for name in sorted(os.listdir(workdir)):
        entry = os.path.join(workdir, name)
        if name in RUN_DIRS or (name.startswith(RUN_PREFIXES) and os.path.isdir(entry)):
          shutil.rmtree(entry)
        elif name in RUN_FILES or name == 'config.json' or name.startswith(RUN_PREFIXES):
          os.remove(entry)
        else:
          continue
        removed.append(name)
      if removed:
        log(f'--overwrite: deleted {", ".join(removed)} in {workdir}')
    os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
    write_atomic(os.path.join(workdir, 'config.json'),
                 json.dumps(configs.to_dict(config), indent=2))
  except OSError as e:
    raise configs.ConfigError(os_error(e, '--workdir: writing to', workdir) +
                              '; give a writable --workdir') from None


def check_devices(workdir: str, device_count: int, process_count: int, resuming: bool,
                  log=print) -> None:
  """Records the device and process counts in run.json; on resume with other counts, says so."""
  path = os.path.join(workdir, 'run.json')
  now = {'device_count': int(device_count), 'process_count': int(process_count)}
  before = None
  if os.path.exists(path):
    try:
      with open(path) as f:
        before = json.load(f)
    except (OSError, ValueError):
      before = None
  if resuming and before and before.get('device_count') != now['device_count']:
    log(f'note: this run was trained on {before.get("device_count")} device(s) and resumes on '
        f'{device_count}: the batch is split differently, so the numbers will differ slightly '
        'from an uninterrupted run (resume is bit for bit only on the same device count)')
  if before != now:
    write_atomic(path, json.dumps(now) + '\n')
