"""The command line: each bad input ends in one `error:` line naming the field and the choices."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--config.train.steps=2', '--config.train.steps_per_call=1', '--config.train.log_every=1',
        '--config.train.eval_every=2', '--config.train.checkpoint_every=2',
        '--config.eval.num_samples=100', '--config.data.batch_size=16']


def main(*args, workdir):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  return subprocess.run([sys.executable, '-m', 'gan_jax.main', f'--workdir={workdir}', *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


BAD = {
    'objective': (['--config=experiments/gan_ring.py', '--config.objective.name=hing'],
                  "error: config.objective.name: unknown objective 'hing'; valid objectives: "
                  'ebgan, hinge, least_squares, minimax, non_saturating, relativistic, '
                  'relativistic_average, relativistic_average_hinge, wasserstein'),
    'architecture': (['--config=experiments/gan_ring.py', '--config.model.discriminator=resnet9'],
                     "error: config.model.discriminator='resnet9' is not known; valid choices: "
                     'dcgan, dcgan_autoencoder, mlp, mlp_autoencoder, resnet'),
    'optimizer': (['--config=experiments/gan_ring.py', '--config.optim.d_optimizer=adamw2'],
                  "error: config.optim.d_optimizer: unknown optimizer 'adamw2'; valid optimizers: "
                  'adam, rmsprop, sgd'),
    'dataset': (['--config=experiments/gan_ring.py', '--config.data.name=rings'],
                "error: config.data.name='rings' is not known; valid choices: celeb_a, cifar10, "
                'digits, fashion_mnist, grid, mixture_1d, mnist, mnist5k, ring, stacked_mnist, '
                'svhn_cropped, swiss_roll'),
    'penalty': (['--config=experiments/gan_ring.py', '--config.penalty.name=gp'],
                "error: config.penalty.name: unknown penalty 'gp'; valid penalties: dragan, none, "
                'r1, weight_clipping, wgan_gp'),
    'field': (['--config=experiments/gan_ring.py', '--config.optim.dlr=1e-3'],
              'error: --config.optim.dlr: the config has no field \'dlr\' (did you mean "d_lr"?)'),
    'model option': (['--config=experiments/gan_ring.py', '--config.model.g.activation=swish2'],
                     "error: config.model: unknown activation 'swish2'; valid choices: elu, gelu, "
                     'leaky_relu, relu, silu, tanh'),
    'file': (['--config=experiments/no_such_experiment.py'],
             'error: the config file experiments/no_such_experiment.py does not exist; the '
             'experiments are in experiments/'),
    'value': (['--config=experiments/gan_ring.py', '--config.optim.d_lr=fast'],
              "error: flag --config.optim.d_lr=fast: could not convert string to float: 'fast'"),
    'divisibility': (['--config=experiments/gan_ring.py', '--config.train.log_every=150'],
                     'error: config.train.log_every=150 must be a multiple of '
                     'config.train.steps_per_call=100'),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_input_gets_one_clear_line(case, tmp_path):
  args, message = BAD[case]
  result = main(*args, workdir=tmp_path / 'run')
  assert result.returncode != 0
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == message
  assert not (tmp_path / 'run' / 'checkpoints').exists()


def test_workdir_of_another_run(tmp_path):
  first = main('--config=experiments/gan_ring.py', *TINY, workdir=tmp_path)
  assert first.returncode == 0, first.stderr
  other = main('--config=experiments/hinge_grid.py', *TINY, workdir=tmp_path)
  assert other.returncode != 0 and 'Traceback' not in other.stderr
  last = other.stderr.strip().splitlines()[-1]
  assert last.startswith(f'error: workdir {tmp_path} holds a run of another config (it differs in '
                         'data.name, objective.name); use another --workdir, or pass --overwrite')
  assert os.listdir(tmp_path / 'checkpoints') == ['2']  # the old run is untouched


def test_missing_tfds_dataset(tmp_path):
  result = main('--config=experiments/wgan_cifar.py', f'--config.data.data_dir={tmp_path}/none',
                workdir=tmp_path / 'run')
  assert result.returncode != 0 and 'Traceback' not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: tfds dataset 'cifar10' is not prepared in data_dir "
                         f"'{tmp_path}/none'")
  assert 'tfds build cifar10' in last and 'mnist5k' in last
