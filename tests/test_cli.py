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
                  'ebgan, hinge, least_squares, minimax, mmd, non_saturating, relativistic, '
                  'relativistic_average, relativistic_average_hinge, wasserstein'),
    'architecture': (['--config=experiments/gan_ring.py', '--config.model.discriminator=resnet9'],
                     "error: config.model.discriminator='resnet9' is not known; valid choices: "
                     'biggan, dcgan, dcgan_autoencoder, identity, mlp, mlp_autoencoder, resnet, '
                     'stylegan2'),
    'optimizer': (['--config=experiments/gan_ring.py', '--config.optim.d_optimizer=adamw2'],
                  "error: config.optim.d_optimizer: unknown optimizer 'adamw2'; valid optimizers: "
                  'adam, rmsprop, sgd'),
    'dataset': (['--config=experiments/gan_ring.py', '--config.data.name=rings'],
                "error: config.data.name='rings' is not known; valid choices: celeb_a, cifar10, "
                'digits, fashion_mnist, grid, image_folder, mixture_1d, mnist, mnist5k, ring, '
                'stacked_mnist, svhn_cropped, swiss_roll'),
    'penalty': (['--config=experiments/gan_ring.py', '--config.penalty.name=gp'],
                "error: config.penalty.name: unknown penalty 'gp'; valid penalties: dragan, none, "
                'r1, r1_r2, r2, weight_clipping, wgan_gp'),
    'field': (['--config=experiments/gan_ring.py', '--config.optim.dlr=1e-3'],
              'error: --config.optim.dlr: the config has no field \'dlr\' (did you mean "d_lr"?)'),
    'model option': (['--config=experiments/gan_ring.py', '--config.model.g.activation=swish2'],
                     "error: config.model: unknown activation 'swish2'; valid choices: elu, gelu, "
                     'leaky_relu, relu, silu, tanh'),
    'file': (['--config=experiments/no_such_experiment.py'],
             'error: the config file experiments/no_such_experiment.py does not exist; the '
             'experiments are in experiments/'),
    'value': (['--config=experiments/gan_ring.py', '--config.optim.d_lr=fast'],
              'error: --config.optim.d_lr=fast: expected a number'),
    'integer': (['--config=experiments/gan_ring.py', '--config.train.steps=abc'],
                'error: --config.train.steps=abc: expected an integer'),
    'integer, not a float': (['--config=experiments/gan_ring.py', '--config.train.steps=1.5'],
                             'error: --config.train.steps=1.5: expected an integer'),
    'value after a space': (['--config=experiments/gan_ring.py', '--config.train.steps', 'abc'],
                            'error: --config.train.steps=abc: expected an integer'),
    'group': (['--config=experiments/gan_ring.py', '--config.objective=hinge'],
              'error: --config.objective is a group of fields; set one of them, e.g. '
              '--config.objective.name=hinge'),
    'tuple element': (['--config=experiments/gan_ring.py', '--config.model.d.hidden[0]=64'],
                      "error: --config.model.d.hidden[0]: a tuple is set whole, e.g. "
                      "--config.model.d.hidden='(128, 128, 128)'"),
    'not python': (['--config=README.md'],
                   'error: --config=README.md: a config is a Python file defining get_config() '
                   '(the experiments are in experiments/)'),
    'config argument': (['--config=experiments/gan_ring.py:arg'],
                        'error: --config=experiments/gan_ring.py:arg: the config '
                        'experiments/gan_ring.py takes no argument; use '
                        '--config=experiments/gan_ring.py'),
    'eval flag in train mode': (['--config=experiments/gan_ring.py', '--num_samples=100'],
                                'error: --num_samples is for --mode=eval; the training evals use '
                                '--config.eval.num_samples'),
    'eval samples': (['--config=experiments/gan_ring.py', '--mode=eval', '--num_samples=0'],
                     'error: --num_samples=0 must be >= 1 (the samples to evaluate on)'),
    'samples file in sample mode': (['--mode=sample', '--samples=x.npz'],
                                    'error: --samples is for --mode=eval (this is --mode=sample)'),
    'samples file and a count': (['--mode=eval', '--samples=x.npz', '--num_samples=5'],
                                 "error: --samples=x.npz evaluates a file's samples, all of "
                                 'them; --num_samples does not apply'),
    'two noises': (['--mode=sample', '--eval_noise', '--sample_seed=3'],
                   'error: --eval_noise and --sample_seed both choose the noise; give one of '
                   'them'),
    # Range checks (configs.check, tests/test_configs.py has them all) before anything is built:
    # a negative width used to reach flax ("Only non-negative indices are allowed ...").
    'width': (['--config=experiments/gan_ring.py', "--config.model.d.hidden=(-1, 32)"],
              'error: config.model.d.hidden=(-1, 32) must be a tuple of integers >= 1 (the '
              'widths of the hidden layers), e.g. (128, 128)'),
    'phenomenon range': (['--config=experiments/phenomenon_mode_collapse.py',
                          '--config.optim.lr_schedule=cosine'],
                         "error: config.optim.lr_schedule='cosine' is not known; valid choices: "
                         'constant, linear'),
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


CONFIG_FILES = {  # a config file in tmp_path: its text, the last line of stderr
    'syntax error': ('import ml_collections\n\ndef get_config(:\n  pass\n',
                     'error: could not load the config file {path}: SyntaxError: invalid syntax '
                     'at line 3'),
    'no get_config': ('X = 1\n',
                      'error: the config file {path} defines no get_config(); a config is a '
                      'Python file defining get_config() (the experiments are in experiments/)'),
    'error in get_config': ('def get_config():\n  return undefined_name\n',
                            'error: could not load the config file {path}: get_config() raised '
                            "NameError: name 'undefined_name' is not defined (line 2)"),
}


@pytest.mark.parametrize('case', sorted(CONFIG_FILES))
def test_bad_config_file_gets_one_clear_line(case, tmp_path):
  text, message = CONFIG_FILES[case]
  path = tmp_path / 'config.py'
  path.write_text(text)
  result = main(f'--config={path}', workdir=tmp_path / 'run')
  assert result.returncode != 0
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == message.format(path=path)


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
