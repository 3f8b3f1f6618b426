"""Where a run's numbers go: metrics.jsonl (the contract of DESIGN.md) and TensorBoard scalars."""
import json
import math
import os

import numpy as np
from tensorboardX import SummaryWriter


def _plain(v):
  if isinstance(v, (np.generic, np.ndarray)):
    v = v.item()
  return v


class MetricWriter:
  """Appends {"step", "split", <name>: float, ...} lines to metrics.jsonl, mirrored to TensorBoard."""

  def __init__(self, workdir: str, enabled: bool = True):
    """`enabled=False` (processes other than 0 of a multi-host run): records, writes nothing."""
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self.enabled = enabled
    self.tb = SummaryWriter(workdir) if enabled else None

  def write(self, step: int, split: str, scalars: dict, protocol: dict = None,
            tb_prefix: str = None) -> dict:
    record = {'step': int(step), 'split': split}
    record.update({k: _plain(v) for k, v in scalars.items()})
    if protocol is not None:
      record['protocol'] = protocol
    if not self.enabled:
      return record
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    prefix = tb_prefix or split
    for k, v in scalars.items():
      v = _plain(v)
      if isinstance(v, (int, float)) and math.isfinite(v):
        self.tb.add_scalar(f'{prefix}/{k}', v, int(step))
    self.tb.flush()
    return record

  def image(self, step: int, tag: str, image) -> None:
    """An (H, W, C) image with values in [0, 1] to TensorBoard."""
    if not self.enabled:
      return
    self.tb.add_image(tag, np.asarray(image), int(step), dataformats='HWC')
    self.tb.flush()

  def close(self):
    if self.enabled:
      self.tb.close()


def read_metrics(workdir: str) -> list:
  """All records of a workdir's metrics.jsonl."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f if line.strip()]
