"""Multi-host training: 2 processes on localhost (jax.distributed, CPU collectives) train,
checkpoint and resume, and end with the parameters of a 1-process run with the same global batch:
a toy GAN, an image GAN and pix2pix.

Each run is `python -m gan_jax.main` in fresh processes (2 CPU devices each), as on a cluster.
"""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from gan_jax import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOY = ['--config=experiments/default.py', '--config.data.batch_size=64',
       '--config.optim.lr_schedule=constant',  # linear decay's length is train.steps
       '--config.train.steps_per_call=5', '--config.train.log_every=5',
       '--config.train.eval_every=10', '--config.train.checkpoint_every=5',
       '--config.eval.num_samples=200']
# SGD, not Adam: the conv biases before BatchNorm have gradients that are 0 up to rounding, which
# Adam's first steps scale up to ±lr whatever their sign, so any change of summation order (2 hosts
# vs 1) moves them by 2·lr while the networks' functions stay the same.
IMAGE = ['--config=experiments/dcgan_mnist.py', '--config.data.batch_size=16',
         '--config.optim.g_optimizer=sgd', '--config.optim.d_optimizer=sgd',
         '--config.optim.g_lr=0.02', '--config.optim.d_lr=0.02',
         '--config.model.g.channels=8', '--config.model.d.channels=8',
         '--config.train.steps_per_call=1', '--config.train.log_every=1',
         '--config.train.eval_every=4', '--config.train.checkpoint_every=1',
         "--config.eval.metrics=('fid',)", '--config.eval.features=identity',
         '--config.eval.num_samples=64', '--config.eval.batch_size=32']
# pix2pix, as small as it gets (a depth-2 U-Net, a PixelGAN), SGD for the same reason.
PIX2PIX = ['--config=experiments/pix2pix_inpaint_mnist.py', '--config.data.batch_size=16',
           '--config.optim.g_optimizer=sgd', '--config.optim.d_optimizer=sgd',
           '--config.optim.g_lr=0.02', '--config.optim.d_lr=0.02',
           '--config.model.g.channels=4', '--config.model.g.depth=2',
           '--config.model.d.channels=4', '--config.model.d.receptive_field=1',
           '--config.train.steps_per_call=1', '--config.train.log_every=1',
           '--config.train.eval_every=4', '--config.train.checkpoint_every=1',
           "--config.eval.metrics=('fid',)", '--config.eval.features=identity',
           '--config.eval.num_samples=64', '--config.eval.batch_size=32',
           '--config.eval.num_plot=4']


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def run(flags, workdir, steps, processes, devices_per_process=2):
  """`processes` copies of gan_jax.main on `workdir` until `steps`; returns their outputs."""
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS=f'--xla_force_host_platform_device_count={devices_per_process}')
  common = [sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}', *flags,
            f'--config.train.steps={steps}']
  if processes > 1:
    port = free_port()
    commands = [common + [f'--config.distributed.coordinator_address=localhost:{port}',
                          f'--config.distributed.num_processes={processes}',
                          f'--config.distributed.process_id={i}'] for i in range(processes)]
  else:
    commands = [common]
  procs = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for c in commands]
  outputs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  return outputs


def final_params(workdir, step):
  path = os.path.join(workdir, 'checkpoints', str(step), 'default')
  checkpointer = ocp.StandardCheckpointer()
  metadata = checkpointer.metadata(path)
  metadata = getattr(metadata, 'item_metadata', metadata)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        metadata, is_leaf=lambda m: hasattr(m, 'shape'))
  restored = checkpointer.restore(path, target)
  return {'g': restored['g']['params'], 'd': restored['d']['params'], 'ema': restored['g_ema']}


@pytest.mark.parametrize('name, flags, steps', [('toy', TOY, 10), ('image', IMAGE, 4),
                                                 ('pix2pix', PIX2PIX, 4)])
def test_two_processes_with_resume_equal_one_process(tmp_path, name, flags, steps):
  one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
  run(flags, one, steps, processes=1, devices_per_process=4)
  run(flags, two, steps // 2, processes=2)            # 2 hosts × 2 devices, stopped halfway
  outputs = run(flags, two, steps, processes=2)       # ... and resumed
  assert 'resuming from the checkpoint of step' in outputs[0]
  assert 'resuming' not in outputs[1]                 # only process 0 logs
  # Only process 0 wrote the metrics: one train record per logged step, no duplicates.
  with open(os.path.join(two, 'metrics.jsonl')) as f:
    train_steps = [line.split(',')[0] for line in f if '"split": "train"' in line]
  assert len(train_steps) == len(set(train_steps))
  a, b = final_params(one, steps), final_params(two, steps)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5), a, b)
  assert sorted(os.listdir(os.path.join(two, 'samples')))  # plots from process 0


def test_single_host_needs_no_initialisation(monkeypatch):
  for var in ('SLURM_NTASKS', 'SLURM_JOB_ID', 'TPU_WORKER_HOSTNAMES', 'OMPI_COMM_WORLD_SIZE',
              *distributed.ENV):
    monkeypatch.delenv(var, raising=False)
  from gan_jax import configs
  assert distributed.detected_cluster() == ''
  assert distributed.initialize(configs.toy_config()) is False
  monkeypatch.setenv('SLURM_JOB_ID', '1')
  monkeypatch.setenv('SLURM_NTASKS', '4')
  assert distributed.detected_cluster() == 'slurm'
  config = configs.toy_config()
  config.distributed.coordinator_address = 'localhost:1234'
  with pytest.raises(configs.ConfigError, match='num_processes'):
    distributed.initialize(config)
