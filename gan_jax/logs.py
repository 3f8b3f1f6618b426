"""Where a run's numbers go: metrics.jsonl, TensorBoard (scalars, images, the run's hparams)
and, when config.logging.wandb.project is set, Weights & Biases.

metrics.jsonl holds one JSON object per line, {"step": int, "split": "train"|"eval", <name>:
float, ...} (eval records also carry their "protocol"). Each record is appended whole and flushed
at once; on resume `truncate` cuts the file back to its last complete line and to the restored
step, so a resumed run's file reads as an uninterrupted run's.
"""
import hashlib
import json
import math
import os
import sys

import numpy as np
from tensorboardX import SummaryWriter

from gan_jax import workdir as workdir_lib


def _plain(v):
  if isinstance(v, (np.generic, np.ndarray)):
    v = v.item()
  return v


class MetricWriter:
  """Appends {"step", "split", <name>: float, ...} lines to metrics.jsonl, mirrored to TensorBoard."""

  def __init__(self, workdir: str, enabled: bool = True, config=None):
    """`enabled=False` (processes other than 0 of a multi-host run): records, writes nothing.

    With a `config` whose logging.wandb.project is set, every record and image also goes to
    Weights & Biases (wandb imported only then; one run per workdir, resumed with it).
    """
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self.workdir, self.enabled = workdir, enabled
    self._tb = None
    self._wandb = start_wandb(workdir, config) if enabled and config is not None else None

  def hparams(self, config, metrics=()) -> None:
    """The run's config as TensorBoard hparams (its scalar and string fields, dotted names),
    with the eval `metrics` as the hparams dashboard's metric columns."""
    if not self.enabled:
      return
    from tensorboardX.summary import hparams  # pylint: disable=g-import-not-at-top
    values = {k: (v if isinstance(v, (bool, int, float, str)) else json.dumps(v))
              for k, v in workdir_lib.flatten(configs_dict(config)).items() if v is not None}
    for summary in hparams(values, {f'eval/{m}': None for m in metrics}):
      self.tb._get_file_writer().add_summary(summary)  # pylint: disable=protected-access
    self.tb.flush()

  @property
  def tb(self) -> SummaryWriter:
    """The TensorBoard writer, made on the first record (no empty event files)."""
    if self._tb is None:
      self._tb = SummaryWriter(self.workdir)
    return self._tb

  def write(self, step: int, split: str, scalars: dict, protocol: dict = None,
            tb_prefix: str = None) -> dict:
    record = {'step': int(step), 'split': split}
    record.update({k: _plain(v) for k, v in scalars.items()})
    if protocol is not None:
      record['protocol'] = protocol
    if not self.enabled:
      return record
    try:
      with open(self.path, 'a') as f:
        f.write(json.dumps(record) + '\n')
    except OSError as e:
      raise workdir_lib.RunError(
          workdir_lib.os_error(e, f'writing the {split} record of step {step} to', self.path) +
          '; the checkpoints written so far are kept: free space, then rerun the same command '
          'to resume') from None
    prefix = tb_prefix or split
    finite = {f'{prefix}/{k}': _plain(v) for k, v in scalars.items()
              if isinstance(_plain(v), (int, float)) and math.isfinite(_plain(v))}
    for tag, v in finite.items():
      self.tb.add_scalar(tag, v, int(step))
    self.tb.flush()
    if self._wandb is not None:
      self._wandb.log(finite, step=int(step))
    return record

  def image(self, step: int, tag: str, image) -> None:
    """An (H, W, C) image with values in [0, 1] to TensorBoard."""
    if not self.enabled:
      return
    self.tb.add_image(tag, np.asarray(image), int(step), dataformats='HWC')
    self.tb.flush()
    if self._wandb is not None:
      self._wandb.log({tag: sys.modules['wandb'].Image(np.asarray(image))}, step=int(step))

  def close(self):
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._wandb is not None:
      self._wandb.finish()
      self._wandb = None


def configs_dict(config) -> dict:
  """A ConfigDict (or a plain dict) as plain JSON types."""
  return config if isinstance(config, dict) else json.loads(config.to_json())


def start_wandb(workdir: str, config):
  """The Weights & Biases run of `workdir` if config.logging.wandb.project is set, else None.

  One run per workdir (its id is a hash of the workdir's path), resumed when the run resumes.
  A missing wandb is a ConfigError saying what to install.
  """
  from gan_jax import configs  # pylint: disable=g-import-not-at-top
  options = (config.get('logging', None) or {}).get('wandb', None) or {}
  if not options.get('project'):
    return None
  try:
    import wandb  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise configs.ConfigError(
        f"config.logging.wandb.project={options['project']!r} needs wandb: pip install "
        "'gan_jax[wandb]' (or leave the project unset)") from None
  run_id = hashlib.sha256(os.path.abspath(workdir).encode()).hexdigest()[:16]
  return wandb.init(project=options['project'], entity=options.get('entity'), dir=workdir,
                    id=run_id, resume='allow', config=configs_dict(config))


def read_metrics(workdir: str) -> list:
  """All records of a workdir's metrics.jsonl."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f if line.strip()]


def truncate(workdir: str, step: int) -> int:
  """Cuts `workdir`/metrics.jsonl back to the records of steps <= `step` (the step a run
  resumes from): drops a torn last line (a kill mid-write), records past `step` (written after
  the checkpoint restored) and repeated copies of a record. Returns how many lines were dropped.
  """
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return 0
  with open(path, 'rb') as f:
    lines = f.read().split(b'\n')
  kept, seen = [], set()
  for line in lines[:-1]:  # the part after the last newline is empty or a torn record
    try:
      record = json.loads(line)
    except ValueError:
      continue
    if not isinstance(record, dict) or record.get('step', step + 1) > step or line in seen:
      continue
    seen.add(line)
    kept.append(line)
  dropped = sum(1 for line in lines if line.strip()) - len(kept)
  if dropped:
    workdir_lib.write_atomic(path, b''.join(line + b'\n' for line in kept).decode())
  return dropped
