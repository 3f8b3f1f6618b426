"""The tasks: one registry and one dispatch on config.task.

  gan         GANs on toy distributions and images (gan_jax/gan.py)
  pix2pix     image-to-image translation, the GAN as an auxiliary loss (gan_jax/pix2pix/)
  phenomenon  the measured phenomena of GAN training (gan_jax/phenomena.py), run once

A task is either an experiment class that the task-agnostic loop (gan_jax/train.py) drives
through the interface of gan_jax/experiment.py, or a measurement: a function run once on its
workdir. A new task is a new module and one line of `TASKS`.
"""
from typing import Callable, NamedTuple, Optional

from tqdm import tqdm

from gan_jax import configs, gan, phenomena, pix2pix, train


class Task(NamedTuple):
  """A task: an experiment class for the loop, or `run(config, workdir, overwrite)` (a
  measurement, not trained by the loop)."""
  experiment: Optional[type] = None
  run: Optional[Callable] = None


TASKS = {
    'gan': Task(experiment=gan.GANExperiment),
    'pix2pix': Task(experiment=pix2pix.Pix2PixExperiment),
    'phenomenon': Task(run=phenomena.run),
}


def get(config) -> Task:
  """The task of config.task ('gan' when absent); a ConfigError names the valid ones."""
  return configs.lookup(TASKS, 'task', config.get('task', 'gan'))


def make_experiment(config, devices=None):
  """The experiment of config.task, built from `config` over `devices` (default: all)."""
  task = get(config)
  if task.experiment is None:
    raise configs.ConfigError(f'config.task={config.task!r} is a measurement run once by '
                              '--mode=train; it has no checkpoints to evaluate')
  return task.experiment(config, devices)


def train_and_evaluate(config, workdir: str, overwrite: bool = False, devices=None,
                       log=tqdm.write):
  """--mode=train: trains (or, for a measurement, runs) `config` in `workdir`."""
  task = get(config)
  if task.run is not None:
    return task.run(config, workdir, overwrite=overwrite)
  return train.train_and_evaluate(config, workdir, make_experiment, overwrite=overwrite,
                                  devices=devices, log=log)


def evaluate_workdir(config, workdir: str, num_samples: int = None, log=tqdm.write,
                     best: bool = False) -> list:
  """--mode=eval: evaluates the latest (`best`: the best-kept) checkpoint of `workdir` (config
  None: its config.json)."""
  return train.evaluate_workdir(config, workdir, make_experiment, num_samples=num_samples,
                                log=log, best=best)
