"""StyleGAN2 trained by its reference, at a gan_jax experiment's sizes, scored by gan_jax.

When a gan_jax StyleGAN2 run does not learn, is it gan_jax's training step or the recipe at that
size? This runs stylegan2-ada-pytorch's own `Generator`, `Discriminator` and `StyleGAN2Loss`
(Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data",
arXiv:2006.06676; its training/networks.py and training/loss.py) on CPU through the phases of its
training loop: per iteration Gmain, Greg every `path_length.every`, Dmain, Dreg every
`penalty.every`, each phase with its own latents, each an optimizer step of its own (one Adam per
network, shared by its main and reg phases), G's EMA with the reference's half-life and
ramp-up. The sizes, learning rates and regularisers are the gan_jax experiment's, read from its
config (the rates as the config states them: already scaled for the lazy intervals, as the
reference scales its own). Its G_ema's samples are then scored by gan_jax's evaluator with the
experiment's protocol, beside gan_jax's own run of the same experiment at the same iterations.

Not reproduced: ADA (the worker refuses a config with it on), conditioning, float16 layers.

  git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ref
  python benchmarks/stylegan2_reference.py --reference /tmp/sg2ref \\
      --torch-python /tmp/torchvenv/bin/python --experiment experiments/stylegan2_mnist5k.py \\
      --iterations 500 1000 [--set model.g.channel_max=64 ...]

Writes the reference's samples (.npz, uint8 NHWC `images`) and 10×10 grids (.png) to --out and a
table to the RESULTS.md section `stylegan2_reference[_SUFFIX]`.
"""
import argparse
import ast
import datetime
import json
import math
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# --- the PyTorch worker (runs under --torch-python, imports nothing of gan_jax) ----------------

def worker(spec_path: str) -> None:
  import copy  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  with open(spec_path) as f:
    s = json.load(f)
  sys.path.insert(0, s['reference'])
  import torch  # pylint: disable=g-import-not-at-top
  from torch_utils import misc  # pylint: disable=g-import-not-at-top
  from training import networks  # pylint: disable=g-import-not-at-top
  from training.loss import StyleGAN2Loss  # pylint: disable=g-import-not-at-top
  torch.manual_seed(s['seed'])
  rng = np.random.default_rng(s['seed'])
  torch.set_num_threads(s['threads'])
  data = np.load(s['data'])['image'].transpose(0, 3, 1, 2).astype(np.float32)  # NCHW, [-1, 1]
  size, channels, batch = data.shape[2], data.shape[1], s['batch']
  common = dict(c_dim=0, img_resolution=size, img_channels=channels)
  g = networks.Generator(
      z_dim=s['z_dim'], w_dim=s['w_dim'], mapping_kwargs=dict(num_layers=s['mapping_layers']),
      synthesis_kwargs=dict(channel_base=s['g_channel_base'], channel_max=s['g_channel_max'],
                            num_fp16_res=0, conv_clamp=256), **common).train().requires_grad_(False)
  d = networks.Discriminator(
      channel_base=s['d_channel_base'], channel_max=s['d_channel_max'], num_fp16_res=0,
      conv_clamp=256, architecture=s['architecture'],
      epilogue_kwargs=dict(mbstd_group_size=s['mbstd_group']), **common
  ).train().requires_grad_(False)
  g_ema = copy.deepcopy(g).eval()
  print(f'reference: G {sum(p.numel() for p in g.parameters()):,} and D '
        f'{sum(p.numel() for p in d.parameters()):,} parameters', flush=True)
  loss = StyleGAN2Loss(torch.device('cpu'), g.mapping, g.synthesis, d, r1_gamma=s['r1_gamma'],
                       pl_weight=s['pl_weight'], pl_batch_shrink=s['pl_batch_shrink'],
                       pl_decay=s['pl_decay'], style_mixing_prob=s['mixing_prob'])
  phases = []
  for name, net in (('G', g), ('D', d)):
    opt = torch.optim.Adam(net.parameters(), lr=s[f'{name}_lr'], betas=tuple(s[f'{name}_betas']),
                           eps=1e-8)
    phases += [(name + 'main', net, opt, 1), (name + 'reg', net, opt, s[f'{name}_reg_every'])]
  phases = [p for p in phases if p[0] != 'Greg' or s['pl_weight']]
  no_c = torch.zeros([batch, 0])
  order, pos, start = rng.permutation(len(data)), 0, time.time()
  for it in range(max(s['iterations'])):
    if pos + batch > len(data):
      order, pos = rng.permutation(len(data)), 0
    real = torch.from_numpy(data[order[pos:pos + batch]])
    pos += batch
    for (name, net, opt, every), z in zip(phases, torch.randn([len(phases), batch, s['z_dim']])):
      if it % every:
        continue
      opt.zero_grad(set_to_none=True)
      net.requires_grad_(True)
      loss.accumulate_gradients(phase=name, real_img=real, real_c=no_c, gen_z=z, gen_c=no_c,
                                sync=True, gain=every)
      net.requires_grad_(False)
      for p in net.parameters():
        if p.grad is not None:
          misc.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
      opt.step()
    with torch.no_grad():  # the EMA of G (its half-life in images, ramped up), buffers copied
      half_life = s['ema_images']
      if s['ema_rampup']:
        half_life = min(half_life, it * batch * s['ema_rampup'])
      beta = 0.5 ** (batch / max(half_life, 1e-8))
      for p_ema, p in zip(g_ema.parameters(), g.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
      for b_ema, b in zip(g_ema.buffers(), g.buffers()):
        b_ema.copy_(b)
    if (it + 1) % 100 == 0:
      print(f'reference: iteration {it + 1}, {time.time() - start:.0f} s', flush=True)
    if it + 1 in s['iterations']:
      gen = torch.Generator().manual_seed(s['seed'] + 1)
      images = []
      with torch.no_grad():
        for i in range(0, s['num_samples'], 500):
          z = torch.randn([min(500, s['num_samples'] - i), s['z_dim']], generator=gen)
          x = g_ema(z, torch.zeros([len(z), 0]), noise_mode='random')
          images.append((x * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
      path = os.path.join(s['out'], f'reference_{it + 1}.npz')
      np.savez(path, images=np.concatenate(images))
      print(f'reference: wrote {path}', flush=True)


# --- the driver (gan_jax's venv) ---------------------------------------------------------------

def _set(config, field: str, text: str) -> None:
  *path, last = field.split('.')
  node = config
  for key in path:
    node = node[key]
  try:
    node[last] = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    node[last] = text


def spec_of(config, reference: str, data_path: str, out: str, iterations, threads: int) -> dict:
  """The worker's settings: the experiment's sizes, rates and regularisers."""
  g, d, o, pl = config.model.g, config.model.d, config.optim, config.tricks.path_length
  if config.tricks.ada.enabled or g.get('conditioning'):
    sys.exit('error: the reference worker runs unconditional StyleGAN2 without ADA; set '
             'tricks.ada.enabled=False and no conditioning')
  if config.penalty.name != 'r1' or config.objective.name != 'non_saturating':
    sys.exit(f'error: the reference loss is non-saturating + R1; this config has '
             f'{config.objective.name} + {config.penalty.name}')
  batch = config.data.batch_size
  return {
      'reference': reference, 'data': data_path, 'out': out, 'iterations': list(iterations),
      'threads': threads, 'seed': int(config.seed), 'batch': batch,
      'num_samples': int(config.eval.num_samples), 'z_dim': int(config.model.z_dim),
      'w_dim': int(g.w_dim), 'mapping_layers': int(g.mapping_layers),
      'mixing_prob': float(g.get('mixing_prob', 0.0)),
      'g_channel_base': int(g.channel_base), 'g_channel_max': int(g.channel_max),
      'd_channel_base': int(d.channel_base), 'd_channel_max': int(d.channel_max),
      'architecture': d.get('architecture', 'resnet'), 'mbstd_group': int(d.get('mbstd_group', 4)),
      'r1_gamma': 2 * float(config.penalty.weight),  # gan_jax's weight is γ/2
      'D_reg_every': int(config.penalty.every), 'G_reg_every': int(pl.every),
      'pl_weight': float(pl.weight), 'pl_batch_shrink': int(pl.batch_shrink),
      'pl_decay': float(pl.decay),
      'G_lr': float(o.g_lr), 'D_lr': float(o.d_lr), 'G_betas': list(o.g_betas),
      'D_betas': list(o.d_betas),
      # EMA decay per iteration β = 0.5^(batch / half-life in images)
      'ema_images': batch * math.log(0.5) / math.log(float(o.ema_decay)),
      'ema_rampup': float(o.get('ema_rampup') or 0.0),
  }


def gan_jax_run(experiment: str, sets, workdir: str, iterations) -> dict:
  """{iteration: EMA eval record} of gan_jax's run of the experiment (trained if absent)."""
  from gan_jax import logs  # pylint: disable=g-import-not-at-top
  every = math.gcd(*iterations)
  if not os.path.exists(os.path.join(workdir, 'config.json')):
    cmd = [sys.executable, '-m', 'gan_jax.main', f'--config={experiment}', f'--workdir={workdir}',
           f'--config.train.steps={max(iterations)}', f'--config.train.eval_every={every}',
           f'--config.train.checkpoint_every={max(iterations)}'] + [f'--config.{s}' for s in sets]
    print(' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
  return {r['step']: r for r in logs.read_metrics(workdir)
          if r['split'] == 'eval' and r['protocol']['generator'] == 'ema'}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--worker', help=argparse.SUPPRESS)
  parser.add_argument('--reference', help='a stylegan2-ada-pytorch checkout')
  parser.add_argument('--torch-python', default=os.environ.get('TORCH_PYTHON',
                                                               '/tmp/torchvenv/bin/python'))
  parser.add_argument('--experiment', default=os.path.join(ROOT, 'experiments',
                                                           'stylegan2_mnist5k.py'))
  parser.add_argument('--set', nargs='*', default=[], metavar='FIELD=VALUE',
                      help='config overrides, for both frameworks')
  parser.add_argument('--iterations', nargs='+', type=int, default=[500, 1000])
  parser.add_argument('--threads', type=int, default=1, help="the reference's torch threads")
  parser.add_argument('--out', default=os.path.join(ROOT, 'runs', 'stylegan2_reference'))
  parser.add_argument('--no-gan-jax', action='store_true', help="skip gan_jax's own run")
  parser.add_argument('--suffix', default='', help='names the RESULTS.md section')
  args = parser.parse_args()
  if args.worker:
    return worker(args.worker)
  if not args.reference or not os.path.exists(os.path.join(args.reference, 'training', 'loss.py')):
    sys.exit(f'error: --reference={args.reference!r} is not a stylegan2-ada-pytorch checkout; '
             'git clone https://github.com/NVlabs/stylegan2-ada-pytorch and name it')
  if not os.path.exists(args.torch_python):
    sys.exit(f'error: no PyTorch interpreter at {args.torch_python}; make one with `make '
             f'{args.torch_python}` or name one with --torch-python')
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from common import load_config, machine, write_section  # pylint: disable=g-import-not-at-top
  from gan_jax import gan  # pylint: disable=g-import-not-at-top
  config = load_config(args.experiment)
  for item in args.set:
    _set(config, *item.split('=', 1))
  tag = '-'.join(s.replace('=', '_') for s in args.set) or 'as_is'
  out = os.path.join(args.out, f'{os.path.splitext(os.path.basename(args.experiment))[0]}-{tag}')
  os.makedirs(out, exist_ok=True)
  exp = gan.GANExperiment(config)
  data_path = os.path.join(out, 'training_images.npz')
  np.savez(data_path, image=exp.data.arrays()['image'])  # as gan_jax trains on them
  spec = spec_of(config, os.path.abspath(args.reference), data_path, out, args.iterations,
                 args.threads)
  with open(os.path.join(out, 'spec.json'), 'w') as f:
    json.dump(spec, f, indent=2)
  subprocess.run([args.torch_python, os.path.abspath(__file__), '--worker',
                  os.path.join(out, 'spec.json')], check=True)
  ours = {} if args.no_gan_jax else gan_jax_run(args.experiment, args.set,
                                                os.path.join(out, 'gan_jax'), args.iterations)
  keys = ('fid', 'precision', 'recall', 'c2st_accuracy')
  rows = []
  for it in args.iterations:
    images = np.load(os.path.join(out, f'reference_{it}.npz'))['images']
    metrics, _ = exp.evaluator(None, None, len(images), 'stylegan2-ada-pytorch', samples=images)
    grid = images[:100].reshape((10, 10) + images.shape[1:]).swapaxes(1, 2)
    grid = grid.reshape(10 * images.shape[1], 10 * images.shape[2], -1)
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(
        os.path.join(out, f'reference_{it}.png'))
    mine = ours.get(it, {})
    cells = [f'{metrics[k]:.3f}' if k != 'fid' else f'{metrics[k]:.1f}' for k in keys]
    cells += [('—' if k not in mine else f'{mine[k]:.1f}' if k == 'fid' else f'{mine[k]:.3f}')
              for k in keys]
    rows.append(f'| {it:,} | {it * config.data.batch_size:,} | ' + ' | '.join(cells) + ' |')
    print(rows[-1], flush=True)
  name = 'stylegan2_reference' + (f'_{args.suffix}' if args.suffix else '')
  begin, end = f'<!-- BEGIN {name} -->', f'<!-- END {name} -->'
  overrides = ' '.join(f'`{s}`' for s in args.set) or 'none'
  table = '\n'.join([
      begin,
      f'`python benchmarks/stylegan2_reference.py --experiment '
      f'{os.path.relpath(args.experiment, ROOT)} --iterations {" ".join(map(str, args.iterations))}'
      f'{" --set " + " ".join(args.set) if args.set else ""}` ({datetime.date.today()}; '
      f'{machine()}; the reference on {args.threads} torch thread(s)). Overrides: {overrides}. '
      f'stylegan2-ada-pytorch\'s networks, loss and phases at the experiment\'s sizes (seed '
      f'{config.seed}), {config.eval.num_samples:,} samples of its G_ema scored by gan_jax\'s '
      f'evaluator with the experiment\'s protocol' + ('.' if args.no_gan_jax else
                                                       '; beside them gan_jax\'s own run of the '
                                                       'same config (EMA generator, its '
                                                       'fixed-noise eval).'),
      '',
      '| iteration | images seen | reference FID | precision | recall | C2ST | gan_jax FID | '
      'precision | recall | C2ST |',
      '|---|---|---|---|---|---|---|---|---|---|',
      *rows,
      end])
  write_section(begin, end, table)


if __name__ == '__main__':
  main()
