"""Parity of `gan_jax.metrics.inception.FIDInceptionV3` with pytorch-fid's InceptionV3.

Needs torch and pytorch-fid beside the project's jax/flax, in a separate venv (never the
project's own: torch is not a gan_jax dependency). On this workplace's x86_64 machines:

  pip install torch==2.14.1 torchvision==0.29.1 pytorch-fid

(`torch==2.13.0` alone is the CPU file on disk, but pytorch-fid imports torchvision, and PyPI's
torchvision does not import beside that file.) Then, from the repository root:

  python benchmarks/inception_parity.py [--weights pt_inception-2015-12-05-6726825d.pth]

It builds pytorch-fid's `InceptionV3([3], use_fid_inception=True)` (its download replaced by the
given file, or by random weights: He-normal convs, random BN statistics and affine), saves the
state_dict with `torch.save` in both the zip and the legacy format, loads each with
`load_params`, runs both networks on the same random images ([0, 1] NCHW for torch, the same
images mapped to [-1, 1] NHWC for JAX; sizes below and above 299, so the resize is checked both
ways) and prints the max |difference| of pool features and logits (target: 1e-4). Both run in
float32 on the CPU; the JAX convs at Precision.HIGHEST.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def _random_state_dict(state_dict, seed):
  import torch  # pylint: disable=import-outside-toplevel
  gen = torch.Generator().manual_seed(seed)
  out = {}
  for name, value in state_dict.items():
    if name.endswith('num_batches_tracked'):
      out[name] = value
    elif value.ndim == 4 or name == 'fc.weight':
      fan_in = int(np.prod(value.shape[1:]))
      out[name] = torch.randn(value.shape, generator=gen) * np.sqrt(2.0 / fan_in)
    elif name.endswith(('running_var', 'bn.weight')):
      out[name] = 0.5 + torch.rand(value.shape, generator=gen)
    else:  # running_mean, bn.bias, fc.bias
      out[name] = 0.1 * torch.randn(value.shape, generator=gen)
  return out


def build_torch_model(weights, seed):
  """pytorch-fid's InceptionV3 (pool3 block) and the Inception3 under it (for fc)."""
  import torch  # pylint: disable=import-outside-toplevel
  from pytorch_fid import inception as pfi  # pylint: disable=import-outside-toplevel
  created = []
  make_inception = pfi._inception_v3  # pylint: disable=protected-access

  def recording(*args, **kwargs):
    created.append(make_inception(*args, **kwargs))
    return created[-1]

  def fake_download(*unused_args, **unused_kwargs):
    if weights:
      return torch.load(weights, map_location='cpu')
    return _random_state_dict(created[-1].state_dict(), seed)  # FID blocks already swapped in

  pfi._inception_v3 = recording  # pylint: disable=protected-access
  pfi.load_state_dict_from_url = fake_download
  model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], use_fid_inception=True)
  return model.eval(), created[-1].eval()


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--weights', default=None, help="pytorch-fid's .pth (default: random)")
  parser.add_argument('--batch', type=int, default=4)
  parser.add_argument('--sizes', type=int, nargs='+', default=[32, 331])
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()

  import torch  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  from gan_jax.metrics import inception  # pylint: disable=import-outside-toplevel

  torch.manual_seed(args.seed)
  model, inception3 = build_torch_model(args.weights, args.seed)
  if args.weights:
    print(f'weights {args.weights} sha256 {inception.weights_sha256(args.weights)}')
  worst = 0.0
  with tempfile.TemporaryDirectory() as tmp:
    state_dict = inception3.state_dict()
    paths = {'zip': os.path.join(tmp, 'zip.pth'), 'legacy': os.path.join(tmp, 'legacy.pth')}
    torch.save(state_dict, paths['zip'])
    torch.save(state_dict, paths['legacy'], _use_new_zipfile_serialization=False)
    loaded = {fmt: inception.load_params(p) for fmt, p in paths.items()}
  for leaf_a, leaf_b in zip(jax.tree.leaves(loaded['zip']), jax.tree.leaves(loaded['legacy'])):
    assert np.array_equal(leaf_a, leaf_b), 'zip and legacy loads differ'
  apply = jax.jit(inception.FIDInceptionV3().apply)
  rng = np.random.default_rng(args.seed)
  for size in args.sizes:
    x01 = rng.uniform(0, 1, (args.batch, 3, size, size)).astype(np.float32)  # NCHW in [0, 1]
    with torch.no_grad():
      pool_t = model(torch.from_numpy(x01))[0].flatten(1)
      logits_t = inception3.fc(pool_t)
    out = apply(loaded['zip'], np.transpose(2 * x01 - 1, (0, 2, 3, 1)))
    for key, ref in (('pool', pool_t.numpy()), ('logits', logits_t.numpy())):
      diff = float(np.max(np.abs(np.asarray(out[key]) - ref)))
      worst = max(worst, diff)
      print(f'{size:4d}px {key:6s} max|Δ| {diff:.3e}  (max|ref| {np.max(np.abs(ref)):.3e})')
  print(f'worst max|Δ| {worst:.3e}: {"OK" if worst <= 1e-4 else "ABOVE"} the 1e-4 target')
  return 0 if worst <= 1e-4 else 1


if __name__ == '__main__':
  sys.exit(main())
