"""gan_jax's evaluation against pytorch-fid, torch-fidelity and clean-fid, network to metrics.

Needs torch and the reference libraries beside the project's jax/flax, in a separate venv (never
the project's own: torch is not a gan_jax dependency, and every import of torch or of a
reference library stays inside this file). On this workplace's x86_64 machines:

  pip install torch==2.14.1 torchvision==0.29.1 pytorch-fid==0.3.0 torch-fidelity==0.4.0 \
      clean-fid==0.1.35

(`torch==2.13.0` alone is the CPU file on disk, but pytorch-fid imports torchvision, and PyPI's
torchvision does not import beside that file.) Then, from the repository root:

  python benchmarks/inception_parity.py --network   # the network check alone (~20 s)
  python benchmarks/inception_parity.py             # it and every preset (~13 min on 2 cores)
  python benchmarks/inception_parity.py --section   # the same, and writes RESULTS.md's section

(`--no-fid` skips the FIDs, half the time: each is a 2048-d matrix square root; `--json PATH`
keeps the raw numbers, and `--render PATH [--section]` rebuilds the section from them.)

Nothing is downloaded. The weights are pytorch-fid's file when given (--weights), else random
ones (seeded: He-normal convs, random BN statistics and affine), saved as pytorch-fid's state_dict
`.pth` and read by every side: gan_jax's `load_params`, pytorch-fid's `InceptionV3` (its download
replaced), torch-fidelity's `FeatureExtractorInceptionV3(feature_extractor_weights_path=...)`
(its parameter names are pytorch-fid's). For the presets, random weights are first calibrated on
8 other images (`calibrate`): a mean pool feature of 0.4 (the real weights' order) and fc's rows
projected off the mean feature, so that IS is not 1 whatever the code computes.

1. Network (`--network`): pytorch-fid's `InceptionV3([3], use_fid_inception=True)` and
   `gan_jax.metrics.inception.FIDInceptionV3` on the same random images ([0, 1] NCHW for torch,
   the same images in [-1, 1] NHWC for JAX; 32 and 331 px, so the resize is checked both ways),
   the state_dict loaded from torch's zip and legacy formats; max |difference| of pool features
   and logits (target 1e-4). Both in float32 on the CPU; the JAX convs at Precision.HIGHEST.

2. Presets (gan_jax.evaluation.PROTOCOLS): seeded synthetic uint8 images (blocky colour fields
   with a ramp and noise; `--fake` 64 and `--real` 96 at 32×32, `--big` 4 at 512×512 for
   downsampling) are written as PNG files, which each reference reads with its own loader;
   gan_jax gets x = u/127.5 - 1 (its quantisation gives u back exactly) through
   `evaluation.inception_extractor` and `evaluation.compute_metrics`, as the evaluator does.
     pytorch_fid     pytorch-fid: `get_activations` (ImagePathDataset, ToTensor, F.interpolate,
                     2x - 1), `calculate_frechet_distance`. It has no KID or IS.
     torch_fidelity  torch-fidelity: `ImagesPathDataset` (uint8), `FeatureExtractorInceptionV3`
                     ('2048', 'logits_unbiased'), `fid_statistics_to_metric`,
                     `kid_features_to_metric`, `isc_features_to_metric` with its DEFAULTS (seed
                     2020, 10 splits, shuffle, 100 subsets) but kid_subset_size = the smaller
                     count (it must not exceed either).
     clean_fid       clean-fid's `clean` mode: `ResizeDataset(mode='clean')` (PIL bicubic on
                     float32 pixels, clipped), x - 128 then / 128, `fid_from_feats`,
                     `kernel_distance` (after np.random.seed(metric_seed): it draws from NumPy's
                     global RNG). Its network is StyleGAN2-ADA's TorchScript
                     `inception-2015-12-05.pt`, a download: pytorch-fid's network on the same
                     weights stands in, so what is compared is clean-fid's resize, quantisation
                     and statistics. Also its generator path (`get_model_features`: float pixels,
                     not quantised) against the preset with quantize off and on.
     stylegan2_ada   no installable package: torch-fidelity's features (the same TF1 resize and
                     scaling) with StyleGAN2-ADA's KID (clean-fid's `kernel_distance` is its code,
                     generated subset first) and its IS (torch-fidelity's formula, no shuffle).
   Per row: features max |Δ| (gan_jax against the reference in float32; 32 px and 512 px), the
   reference's own float32 against float64 (a `.double()` copy of its network: torch-fidelity
   0.4.0's feature_extractor_internal_dtype='float64' runs float32) on the first `--n64` fakes,
   and gan_jax against that float64; FID, KID and IS relative differences end to end (each
   side's features and functions) and on the same features (the reference's functions on
   gan_jax's features; KID also on them in float64); FID also against its exact value
   (`exact_fid`, an SVD of the small cross-product of the centred features), which tells whose
   square root is off when the covariances are singular (fewer images than 2048, as here).
   Targets: features within float32 rounding, FID and KID 1e-6 relative, IS 1e-3.
"""
import argparse
import contextlib
import copy
import datetime
import io
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

BEGIN, END = '<!-- inception_parity:begin -->', '<!-- inception_parity:end -->'
TITLE = '## Evaluation parity with pytorch-fid, torch-fidelity and clean-fid'
BATCH = 16


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


def calibrate(model, inception3, images01, pool_mean=0.4, logit_spread=3.0):
  """Random weights made to look like the real ones where the metrics can tell.

  Mixed_7c's output BatchNorms (weight and bias: ReLU(c·y) = c·ReLU(y)) are scaled so the mean
  pool feature of `images01` (NCHW in [0, 1]) is `pool_mean`, the real weights' order (random BN
  statistics make it much larger); fc's rows are projected off their mean pool feature and scaled
  so each logit spreads by `logit_spread` across the images (otherwise the shared mean feature
  decides the class of every image, and IS is 1 whatever the code computes)."""
  import torch  # pylint: disable=import-outside-toplevel
  with torch.no_grad():
    pool = model(torch.from_numpy(images01))[0].flatten(1).double()
    c = pool_mean / float(pool.mean())
    block = inception3.Mixed_7c
    for name in ('branch1x1', 'branch3x3_2a', 'branch3x3_2b', 'branch3x3dbl_3a',
                 'branch3x3dbl_3b', 'branch_pool'):
      getattr(block, name).bn.weight.mul_(c)
      getattr(block, name).bn.bias.mul_(c)
    pool = pool * c
    unit = pool.mean(0) / pool.mean(0).norm()
    w = inception3.fc.weight.double()
    w = w - (w @ unit)[:, None] * unit[None]
    w = w * (logit_spread / float((pool @ w.T).std(0).mean()))
    inception3.fc.weight.copy_(w.float())


@contextlib.contextmanager
def _quiet():
  """The references' progress bars and prints, kept off the console."""
  with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
    yield


# ---------------------------------------------------------------------------------------------
# 1. The network alone.

def network_check(model, inception3, paths, sizes, batch, seed) -> tuple:
  """(worst max|Δ|, lines): pytorch-fid's network and FIDInceptionV3 on the same images."""
  import jax  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from gan_jax.metrics import inception  # pylint: disable=import-outside-toplevel
  loaded = {fmt: inception.load_params(p) for fmt, p in paths.items()}
  for leaf_a, leaf_b in zip(jax.tree.leaves(loaded['zip']), jax.tree.leaves(loaded['legacy'])):
    assert np.array_equal(leaf_a, leaf_b), 'zip and legacy loads differ'
  apply = jax.jit(inception.FIDInceptionV3().apply)
  rng = np.random.default_rng(seed)
  worst, lines = 0.0, []
  for size in sizes:
    x01 = rng.uniform(0, 1, (batch, 3, size, size)).astype(np.float32)  # NCHW in [0, 1]
    with torch.no_grad():
      pool_t = model(torch.from_numpy(x01))[0].flatten(1)
      logits_t = inception3.fc(pool_t)
    out = apply(loaded['zip'], np.transpose(2 * x01 - 1, (0, 2, 3, 1)))
    for key, ref in (('pool', pool_t.numpy()), ('logits', logits_t.numpy())):
      diff = float(np.max(np.abs(np.asarray(out[key]) - ref)))
      worst = max(worst, diff)
      lines.append(f'{size:4d}px {key:6s} max|Δ| {diff:.3e}  (max|ref| {np.max(np.abs(ref)):.3e})')
      print(lines[-1], flush=True)
  print(f'worst max|Δ| {worst:.3e}: {"OK" if worst <= 1e-4 else "ABOVE"} the 1e-4 target')
  return worst, lines


# ---------------------------------------------------------------------------------------------
# 2. The presets: images, the references' pipelines, gan_jax's.

def _fields(rng, n, size, cells, contrast, noise, mean) -> np.ndarray:
  """n RGB images (n, size, size, 3), float in [0, 255]: a cells × cells field of random colours
  (sharp edges once enlarged), a random colour ramp and pixel noise."""
  low = rng.normal(mean, contrast, (n, cells, cells, 3))
  rep = -(-size // cells)
  img = np.repeat(np.repeat(low, rep, axis=1), rep, axis=2)[:, :size, :size]
  ramp = np.linspace(-1, 1, size)[None, :, None, None] * rng.normal(0, contrast / 2, (n, 1, 1, 3))
  return np.clip(img + ramp + rng.normal(0, noise, img.shape), 0, 255)


def make_images(seed, n_fake, n_real, n_big, n_float) -> dict:
  """uint8 'fake', 'real' (32 px, two distributions), 'big' (512 px); float 'float' in [-1, 1]."""
  rng = np.random.default_rng(seed)
  u8 = lambda a: np.round(a).astype(np.uint8)
  return {'fake': u8(_fields(rng, n_fake, 32, 8, 45, 30, 135)),
          'real': u8(_fields(rng, n_real, 32, 4, 60, 20, 120)),
          'big': u8(_fields(rng, n_big, 512, 16, 60, 25, 128)),
          'float': (_fields(rng, n_float, 32, 8, 45, 30, 135) / 127.5 - 1).astype(np.float32)}


def write_pngs(images: dict, root: str) -> dict:
  """PNG files of the uint8 sets, {set: sorted paths}."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  files = {}
  for name, arr in images.items():
    if arr.dtype != np.uint8:
      continue
    os.makedirs(os.path.join(root, name))
    files[name] = [os.path.join(root, name, f'{i:04d}.png') for i in range(len(arr))]
    for path, img in zip(files[name], arr):
      Image.fromarray(img).save(path)
  return files


class GanJax:
  """gan_jax's side of a preset: its extractor, jitted, as the evaluator builds it."""

  def __init__(self, weights_path, settings):
    import jax  # pylint: disable=import-outside-toplevel
    from gan_jax import evaluation  # pylint: disable=import-outside-toplevel
    self.settings = settings
    self.apply = jax.jit(evaluation.inception_extractor(weights_path, settings=settings).apply)

  def features(self, x) -> tuple:
    """(pool (N, 2048), probs (N, 1008)) float32 of NHWC images in [-1, 1]."""
    pools, probs = [], []
    batch = min(BATCH, len(x))
    for i in range(0, len(x), batch):
      chunk = x[i:i + batch]
      pad = batch - len(chunk)
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)]) if pad else chunk
      pool, prob = self.apply(chunk)
      pools.append(np.asarray(pool)[:batch - pad])
      probs.append(np.asarray(prob)[:batch - pad])
    return np.concatenate(pools), np.concatenate(probs)


def ours_metrics(settings, names, fake, real, probs=None) -> dict:
  """The evaluator's metrics `names` of fake against real features under a preset's settings."""
  from gan_jax import evaluation  # pylint: disable=import-outside-toplevel
  return evaluation.compute_metrics(names, evaluation.reference(real), fake, probs,
                                    seed=settings['metric_seed'], shuffle=settings['is_shuffle'])


def to_unit(u8):
  """uint8 NHWC → gan_jax's [-1, 1], checked to quantize back to the same uint8."""
  from gan_jax.metrics import protocol  # pylint: disable=import-outside-toplevel
  x = (u8.astype(np.float32) / 127.5 - 1).astype(np.float32)
  assert np.array_equal(np.asarray(protocol.quantize(x)), u8), 'u/127.5 - 1 does not round-trip'
  return x


def pfid_features(model, files, float64=False) -> np.ndarray:
  """pytorch-fid's pool3 activations of image files: its get_activations (float32), or its
  dataset and network in float64."""
  import torch  # pylint: disable=import-outside-toplevel
  import torchvision.transforms as TF  # pylint: disable=import-outside-toplevel
  from pytorch_fid import fid_score  # pylint: disable=import-outside-toplevel
  if not float64:
    with _quiet():
      return fid_score.get_activations(files, model, batch_size=BATCH, dims=2048, device='cpu',
                                       num_workers=0)
  dataset = fid_score.ImagePathDataset(files, transforms=TF.ToTensor())
  x = torch.stack([dataset[i] for i in range(len(dataset))]).double()
  with torch.no_grad():
    return copy.deepcopy(model).double()(x)[0].flatten(1).numpy()


class TorchFidelity:
  """torch-fidelity's FeatureExtractorInceptionV3 on our weights, float32 and float64."""

  def __init__(self, weights_path):
    import torch  # pylint: disable=import-outside-toplevel
    from torch_fidelity.feature_extractor_inceptionv3 import \
        FeatureExtractorInceptionV3  # pylint: disable=import-outside-toplevel
    net = FeatureExtractorInceptionV3('inception-v3-compat', ['2048', 'logits_unbiased'],
                                      feature_extractor_weights_path=weights_path)
    # Its feature_extractor_internal_dtype='float64' runs float32 in 0.4.0 (helpers.text_to_dtype
    # maps "float64" to torch.float32), so the float64 copy is made here; it still returns
    # float32 features (its forward ends in .to(torch.float32)).
    net64 = copy.deepcopy(net).double()
    net64.feature_extractor_internal_dtype = torch.float64
    self.nets = {'float32': net, 'float64': net64}

  def features(self, files, dtype='float32') -> dict:
    """{'2048', 'logits_unbiased'}: float32 tensors, as its get_featuresdict_from_dataset."""
    from torch_fidelity.datasets import ImagesPathDataset  # pylint: disable=import-outside-toplevel
    from torch_fidelity.utils import \
        get_featuresdict_from_dataset  # pylint: disable=import-outside-toplevel
    with _quiet():
      return get_featuresdict_from_dataset(ImagesPathDataset(files), self.nets[dtype], BATCH,
                                           cuda=False, save_cpu_ram=True, verbose=False)


class CleanFid:
  """clean-fid's `clean` mode around pytorch-fid's network (no resize, no 2x - 1 inside), fed
  clean-fid's x - 128, / 128 as its InceptionV3W.forward does."""

  def __init__(self, model):
    net = copy.deepcopy(model)
    net.resize_input = net.normalize_input = False
    self.nets = {'float32': net, 'float64': copy.deepcopy(net).double()}

  def _run(self, tensors, dtype) -> np.ndarray:
    import torch  # pylint: disable=import-outside-toplevel
    out = []
    for i in range(0, len(tensors), BATCH):
      x = torch.stack(tensors[i:i + BATCH]).to(getattr(torch, dtype))
      with torch.no_grad():
        out.append(self.nets[dtype]((x - 128) / 128)[0].flatten(1).numpy())
    return np.concatenate(out)

  def features(self, files, dtype='float32') -> np.ndarray:
    """Of PNG files: its ResizeDataset (uint8 → PIL bicubic on float32, clipped; ToTensor)."""
    from cleanfid.utils import ResizeDataset  # pylint: disable=import-outside-toplevel
    dataset = ResizeDataset(files, mode='clean')
    return self._run([dataset[i] for i in range(len(dataset))], dtype)

  def generator_features(self, pixels, dtype='float32') -> np.ndarray:
    """Of float HWC pixels in [0, 255], as its get_model_features: build_resizer('clean') on each
    image, no quantisation."""
    import torch  # pylint: disable=import-outside-toplevel
    from cleanfid.resize import build_resizer  # pylint: disable=import-outside-toplevel
    resize = build_resizer('clean')
    return self._run([torch.tensor(resize(p).transpose((2, 0, 1))) for p in pixels], dtype)


def exact_fid(fake, real) -> float:
  """FID of two feature sets with tr √(Σ1 Σ2) from an SVD of the small cross-product: with A, B
  the centred (n, D) and (m, D) features, Σ1 Σ2 = AᵀA BᵀB / ((n-1)(m-1)), whose eigenvalues are
  the squared singular values of A Bᵀ (n × m), so the trace is ‖A Bᵀ‖_* / √((n-1)(m-1)): exact
  in float64 however singular the covariances (n, m < D here), the arbiter of the FIDs below."""
  a, b = np.asarray(fake, np.float64), np.asarray(real, np.float64)
  da, db = a - a.mean(axis=0), b - b.mean(axis=0)
  root = np.linalg.svd(da @ db.T, compute_uv=False).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
  diff = a.mean(axis=0) - b.mean(axis=0)
  return float(diff @ diff + (da * da).sum() / (len(a) - 1) + (db * db).sum() / (len(b) - 1)
               - 2 * root)


def _rel(a, b) -> float:
  return abs(float(a) - float(b)) / abs(float(b))


def _feature_diff(ours, ref) -> tuple:
  """(max|Δ|, max|Δ| / max|ref|)."""
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  diff = float(np.max(np.abs(ours - ref)))
  return diff, diff / float(np.max(np.abs(ref)))


def _log(probs):
  """Logits whose softmax is `probs` (torch-fidelity's IS takes logits)."""
  return np.log(np.maximum(probs, np.finfo(np.float32).tiny))


def run_presets(model, weights_path, images, files, n64, with_fid=True) -> list:
  """One dict per row: feature differences and (gan_jax, reference, ...) metric values."""
  import torch  # pylint: disable=import-outside-toplevel
  from cleanfid import fid as cfid  # pylint: disable=import-outside-toplevel
  from pytorch_fid import fid_score  # pylint: disable=import-outside-toplevel
  from torch_fidelity import defaults  # pylint: disable=import-outside-toplevel
  from torch_fidelity import (metric_fid, metric_isc,  # pylint: disable=import-outside-toplevel
                              metric_kid)
  from gan_jax import evaluation  # pylint: disable=import-outside-toplevel

  x = {name: to_unit(images[name]) for name in ('fake', 'real', 'big')}
  subset = min(evaluation.KID_SUBSET_SIZE, len(x['fake']), len(x['real']))
  preset = lambda name, **kw: dict(evaluation.PROTOCOLS[name], protocol=name, **kw)
  fid_names = ['fid'] if with_fid else []
  tensor = torch.from_numpy
  f64 = lambda a: a.astype(np.float64)
  results = []

  def timed(label, fn):
    start = time.perf_counter()
    with _quiet():
      out = fn()
    print(f'  {label}: {time.perf_counter() - start:.0f} s', flush=True)
    return out

  def ours_features(settings):
    side = GanJax(weights_path, settings)
    return timed('gan_jax features', lambda: {k: side.features(v) for k, v in x.items()})

  def features_row(name, reference, ours, ref, ref64):
    """ref: {'fake', 'real', 'big'} pool features of the reference in float32; ref64: the
    first n64 fakes' in float64."""
    both = (np.concatenate([ours['fake'][0], ours['real'][0]]),
            np.concatenate([np.asarray(ref['fake']), np.asarray(ref['real'])]))
    return dict(preset=name, reference=reference, feat=_feature_diff(*both),
                big=_feature_diff(ours['big'][0], ref['big']),
                ref64=_feature_diff(np.asarray(ref['fake'])[:n64], ref64),
                ours64=_feature_diff(ours['fake'][0][:n64], ref64))

  # pytorch_fid: pytorch-fid's loader, network, statistics and FID (it has no KID or IS).
  print('pytorch_fid preset vs pytorch-fid', flush=True)
  settings = preset('pytorch_fid')
  ours = ours_features(settings)
  ref = timed('pytorch-fid features', lambda: {k: pfid_features(model, files[k]) for k in
                                               ('fake', 'real', 'big')})
  ref64 = timed('pytorch-fid float64', lambda: pfid_features(model, files['fake'][:n64], True))
  row = features_row('pytorch_fid', 'pytorch-fid', ours, ref, ref64)
  stats = lambda f: (np.mean(f, axis=0), np.cov(f, rowvar=False))  # as its activation statistics
  pfid = lambda a, b: fid_score.calculate_frechet_distance(*stats(a), *stats(b))
  if with_fid:
    row['fid'] = (timed('gan_jax fid', lambda: ours_metrics(settings, ['fid'], ours['fake'][0],
                                                            ours['real'][0])['fid']),
                  timed('pytorch-fid fid', lambda: pfid(ref['fake'], ref['real'])),
                  timed('pytorch-fid fid, same features', lambda: pfid(
                      f64(ours['fake'][0]), f64(ours['real'][0]))))  # get_activations: float64
    row['fid_exact'] = (exact_fid(ours['fake'][0], ours['real'][0]),
                        exact_fid(ref['fake'], ref['real']))
  results.append(row)

  # torch_fidelity: its uint8 loader, extractor and metric functions with its DEFAULTS.
  print('torch_fidelity preset vs torch-fidelity', flush=True)
  settings = preset('torch_fidelity')
  ours = ours_features(settings)
  tfid = TorchFidelity(weights_path)
  ref = timed('torch-fidelity features', lambda: {k: tfid.features(files[k]) for k in
                                                  ('fake', 'real', 'big')})
  ref64 = timed('torch-fidelity float64', lambda: tfid.features(files['fake'][:n64], 'float64'))
  row = features_row('torch_fidelity', 'torch-fidelity', ours,
                     {k: v['2048'] for k, v in ref.items()}, ref64['2048'])
  tf_fid = lambda a, b: metric_fid.fid_statistics_to_metric(
      metric_fid.fid_features_to_statistics(a), metric_fid.fid_features_to_statistics(b),
      False)[metric_fid.KEY_METRIC_FID]
  tf_kid = lambda a, b: metric_kid.kid_features_to_metric(
      a, b, kid_subset_size=subset, verbose=False)[metric_kid.KEY_METRIC_KID_MEAN]
  tf_isc = lambda logits, shuffle: metric_isc.isc_features_to_metric(
      logits, defaults.DEFAULTS['isc_splits'], shuffle, defaults.DEFAULTS['rng_seed'])[
          metric_isc.KEY_METRIC_ISC_MEAN]
  shuffle = defaults.DEFAULTS['samples_shuffle']
  fake, real, probs = ours['fake'][0], ours['real'][0], ours['fake'][1]
  mine = timed('gan_jax metrics', lambda: ours_metrics(
      settings, fid_names + ['kid', 'inception_score'], fake, real, probs))
  if with_fid:
    row['fid'] = (mine['fid'],
                  timed('torch-fidelity fid', lambda: tf_fid(ref['fake']['2048'],
                                                             ref['real']['2048'])),
                  timed('torch-fidelity fid, same features', lambda: tf_fid(tensor(fake),
                                                                            tensor(real))))
    row['fid_exact'] = (exact_fid(fake, real),
                        exact_fid(ref['fake']['2048'].numpy(), ref['real']['2048'].numpy()))
  row['kid'] = (mine['kid'], tf_kid(ref['fake']['2048'], ref['real']['2048']),
                tf_kid(tensor(fake), tensor(real)), tf_kid(tensor(f64(fake)), tensor(f64(real))))
  row['kid_swapped'] = tf_kid(tensor(real), tensor(fake))  # input1 = real: other subsets
  row['kid_ref64'] = tf_kid(ref['fake']['2048'].double(), ref['real']['2048'].double())
  row['is'] = (mine['inception_score'], tf_isc(ref['fake']['logits_unbiased'], shuffle),
               tf_isc(tensor(_log(probs)), shuffle))
  softmax = lambda logits: logits.double().softmax(1).numpy()
  row['probs'] = _feature_diff(probs, softmax(ref['fake']['logits_unbiased']))
  row['probs64'] = _feature_diff(softmax(ref['fake']['logits_unbiased'][:n64]),
                                 softmax(ref64['logits_unbiased']))
  results.append(row)

  # stylegan2_ada: the same image steps (so the same features); StyleGAN2-ADA's KID and IS.
  print('stylegan2_ada preset (torch-fidelity features, StyleGAN2-ADA metrics)', flush=True)
  sg = preset('stylegan2_ada')
  same_steps = all(sg[k] == settings[k] for k in ('quantize', 'resize', 'input_scale',
                                                  'is_logits'))
  assert same_steps, 'stylegan2_ada and torch_fidelity image steps differ'
  mine = ours_metrics(sg, ['kid', 'inception_score'], fake, real, probs)
  ref_np = {k: ref[k]['2048'].numpy() for k in ('fake', 'real')}

  def sg_kid(fake, real):  # StyleGAN2-ADA's compute_kid: np.random, generated subset first
    np.random.seed(sg['metric_seed'])
    return cfid.kernel_distance(real, fake)  # clean-fid's copy: feats2 drawn first

  row = dict(preset='stylegan2_ada', reference='StyleGAN2-ADA metrics (torch-fidelity features)',
             kid=(mine['kid'], sg_kid(ref_np['fake'], ref_np['real']), sg_kid(fake, real),
                  sg_kid(f64(fake), f64(real))),
             kid_ref64=sg_kid(f64(ref_np['fake']), f64(ref_np['real'])),
             **{'is': (mine['inception_score'], tf_isc(ref['fake']['logits_unbiased'], False),
                       tf_isc(tensor(_log(probs)), False))})
  results.append(row)

  # clean_fid: clean-fid's resize and statistics; pytorch-fid's network stands in for its own.
  print('clean_fid preset vs clean-fid (clean mode)', flush=True)
  settings = preset('clean_fid')
  ours = ours_features(settings)
  clean = CleanFid(model)
  ref = timed('clean-fid features', lambda: {k: clean.features(files[k]) for k in
                                             ('fake', 'real', 'big')})
  ref64 = timed('clean-fid float64', lambda: clean.features(files['fake'][:n64], 'float64'))
  row = features_row('clean_fid', 'clean-fid (pytorch-fid network)', ours, ref, ref64)
  fake, real = ours['fake'][0], ours['real'][0]

  def clean_kid(fake, real):  # compute_kid(gen=G, fdir2=real): kernel_distance(real, fake)
    np.random.seed(settings['metric_seed'])
    return cfid.kernel_distance(real, fake)

  mine = timed('gan_jax metrics', lambda: ours_metrics(settings, fid_names + ['kid'], fake, real))
  if with_fid:
    row['fid'] = (mine['fid'],
                  timed('clean-fid fid', lambda: cfid.fid_from_feats(ref['fake'], ref['real'])),
                  timed('clean-fid fid, same features', lambda: cfid.fid_from_feats(fake, real)))
    row['fid_exact'] = (exact_fid(fake, real), exact_fid(ref['fake'], ref['real']))
  row['kid'] = (mine['kid'], clean_kid(ref['fake'], ref['real']), clean_kid(fake, real),
                clean_kid(f64(fake), f64(real)))
  row['kid_ref64'] = clean_kid(f64(ref['fake']), f64(ref['real']))
  results.append(row)

  # clean-fid's generator path (get_model_features): float pixels, resized without quantising.
  print("clean_fid preset vs clean-fid's generator path (float pixels)", flush=True)
  ref_gen = clean.generator_features((images['float'] + 1) * np.float32(127.5))
  off = GanJax(weights_path, preset('clean_fid', quantize=False)).features(images['float'])[0]
  on = GanJax(weights_path, settings).features(images['float'])[0]
  results.append(dict(preset='clean_fid, quantize off', reference="clean-fid's generator path",
                      feat=_feature_diff(off, ref_gen), quantized=_feature_diff(on, ref_gen)))
  return results


# ---------------------------------------------------------------------------------------------
# Report.

def _e(value) -> str:
  return f'{value:.1e}'


def _pair(d) -> str:
  return f'{_e(d[0])} ({_e(d[1])})'


def _cells(row, key) -> str:
  """'end to end / same features[ / same, float64]' relative differences, or '—'."""
  if key not in row:
    return '—'
  vals = row[key]
  return ' / '.join(_e(_rel(vals[0], ref)) for ref in vals[1:])


def section(results, network_worst, args, n_imgs, seconds) -> str:
  """The RESULTS.md section: setup, the table, the values, what they say."""
  import PIL  # pylint: disable=import-outside-toplevel
  import scipy  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  from common import machine  # pylint: disable=import-outside-toplevel,g-bad-import-order
  from gan_jax import evaluation  # pylint: disable=import-outside-toplevel
  versions = (f'torch {torch.__version__} (CPU), pytorch-fid {metadata.version("pytorch-fid")}, '
              f'torch-fidelity {metadata.version("torch-fidelity")}, clean-fid '
              f'{metadata.version("clean-fid")}, numpy {np.__version__}, scipy '
              f'{scipy.__version__}, Pillow {PIL.__version__}, flax {metadata.version("flax")}')
  weights = (f"pytorch-fid's file `{os.path.basename(args.weights)}`" if args.weights else
             f'random (torch seed {args.seed}: He-normal convs, random BN statistics and affine)')
  subset = min(evaluation.KID_SUBSET_SIZE, n_imgs['fake'], n_imgs['real'])
  by = {r['preset']: r for r in results}
  gen = by['clean_fid, quantize off']
  lines = [
      BEGIN, TITLE, '',
      f'`python benchmarks/inception_parity.py --section` ({args.date}; {machine()}; {versions}; '
      f'{seconds / 60:.0f} min). Weights: {weights}, one pytorch-fid state_dict `.pth` read by '
      'every side (nothing can be downloaded here, so not the real weights). Images (numpy seed '
      f'{args.seed}): {n_imgs["fake"]} "fake" and {n_imgs["real"]} "real" 32×32 uint8 PNGs of '
      'two distributions (blocky colour fields, a ramp, noise), upsampled to 299, and '
      f'{n_imgs["big"]} of 512×512, downsampled; each reference reads the PNGs with its own '
      "loader, gan_jax gets u/127.5 - 1 through the evaluator's `inception_extractor` and "
      f'`compute_metrics` (KID: 100 subsets of min(1000, {n_imgs["fake"]}, {n_imgs["real"]}) = '
      f'{subset}, fakes first; IS: 10 splits of the fakes). The network alone '
      f"(pytorch-fid's vs FIDInceptionV3 on [0, 1] / [-1, 1] inputs, 32 and 331 px): "
      f'max |Δ| {_e(network_worst)}.',
      '',
      'Features: max |Δ| of the 2048-d pool features (in brackets: relative to max |feature|), '
      "gan_jax against the reference in float32, and the reference's own float32 against "
      f'float64 on the first {args.n64} fakes (what float32 rounding amounts to). FID, KID, IS: '
      '|gan_jax − reference| / |reference|, end to end (each side its own features and '
      "functions) / on the same features (the reference's functions on gan_jax's features) / "
      'for KID, those features in float64.',
      '',
      '| preset | reference | features, 32 px | features, 512 px | reference f32 vs f64 | '
      'gan_jax vs reference f64 | FID | KID | IS |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for r in results:
    if r is gen:
      feats = f'{_pair(r["feat"])} | | |'
    elif 'feat' in r:
      feats = f'{_pair(r["feat"])} | {_pair(r["big"])} | {_pair(r["ref64"])} | {_pair(r["ours64"])}'
    else:
      feats = '= torch_fidelity | = torch_fidelity | = torch_fidelity | = torch_fidelity'
    lines.append(f'| {r["preset"]} | {r["reference"]} | {feats} | {_cells(r, "fid")} | '
                 f'{_cells(r, "kid")} | {_cells(r, "is")} |')
  lines += ['', 'The values (end to end), FID against its exact value (`exact_fid`: an SVD of '
            f'the {n_imgs["fake"]} × {n_imgs["real"]} cross-product of the centred features) and '
            "the references' KID on their own features in float32 against float64:", '',
            '| preset | FID: gan_jax / reference | exact FID of gan_jax\'s / the reference\'s '
            'features | FID − exact: gan_jax / reference | KID: gan_jax / reference | reference '
            'KID, float32 vs float64 | IS: gan_jax / reference |',
            '|---|---:|---:|---:|---:|---:|---:|']
  for r in results:
    if r is gen:
      continue
    cell = lambda k, r=r: f'{r[k][0]:.7g} / {r[k][1]:.7g}' if k in r else '—'
    fid_error = (f'{_e(_rel(r["fid"][0], r["fid_exact"][0]))} / '
                 f'{_e(_rel(r["fid"][1], r["fid_exact"][1]))}' if 'fid' in r else '—')
    kid64 = _e(_rel(r['kid'][1], r['kid_ref64'])) if 'kid_ref64' in r else '—'
    lines.append(f'| {r["preset"]} | {cell("fid")} | {cell("fid_exact")} | {fid_error} | '
                 f'{cell("kid")} | {kid64} | {cell("is")} |')
  lines += ['', summary(results), END]
  return '\n'.join(lines)


def summary(results) -> str:
  """The paragraph under the tables: what matched, what did not, and why."""
  by = {r['preset']: r for r in results}
  gen = by['clean_fid, quantize off']
  rows = [r for r in results if 'ref64' in r]
  worst = lambda values: _e(max(values))
  feat = worst(max(r['feat'][1], r['big'][1]) for r in rows)
  span = lambda key: f'{_e(min(r[key][1] for r in rows))}–{_e(max(r[key][1] for r in rows))}'
  rel = lambda r, key, i: _rel(r[key][0], r[key][i])
  fid_rows = [r for r in results if 'fid' in r]
  fid = ''
  if fid_rows:
    ours_err = max(_rel(r['fid'][0], r['fid_exact'][0]) for r in fid_rows)
    ref_err = [_rel(r['fid'][1], r['fid_exact'][1]) for r in fid_rows]
    why = ("the error is the references' matrix square root: fewer images than 2048 make the "
           "covariances singular, and scipy's sqrtm (pytorch-fid, clean-fid) and eigvals of the "
           'non-symmetric product (torch-fidelity) keep √(rounding) in each of the ~2000 null '
           "directions, which gan_jax's symmetric eigendecompositions zero"
           if ours_err < min(ref_err) else 'not settled by the exact value')
    fid = (f'FID is {worst(rel(r, "fid", 1) for r in fid_rows)} off the references end to end '
           f'and {worst(rel(r, "fid", 2) for r in fid_rows)} on the same features; against the '
           f"exact value gan_jax's FID is within {_e(ours_err)}, the references' "
           f'{_e(min(ref_err))}–{_e(max(ref_err))} ({why}), and the features move the exact FID '
           f'by {worst(_rel(r["fid_exact"][0], r["fid_exact"][1]) for r in fid_rows)}; ')
  tf, sg, clean = by['torch_fidelity'], by['stylegan2_ada'], by['clean_fid']
  is_rel = worst(rel(r, 'is', i) for r in (tf, sg) for i in (1, 2))
  kid32 = lambda rs: worst(rel(r, 'kid', i) for r in rs for i in (1, 2))
  kid64 = worst(rel(r, 'kid', 3) for r in (tf, sg, clean))
  kid_own = worst(_rel(r['kid'][1], r['kid_ref64']) for r in (tf, sg, clean))
  return (
      f'What matched: the features agree with each reference to {feat} of their largest value, '
      "up- and downsampling, the size of the references' own float32 → float64 change "
      f"({span('ref64')}), and gan_jax is as close to the float64 runs ({span('ours64')}); "
      f'{fid}IS agrees to {is_rel} (torch-fidelity: softmax of the unbiased logits, '
      'RandomState(2020) permutation, 10 splits; StyleGAN2-ADA: the same unshuffled), the '
      f"class probabilities to {_e(tf['probs'][0])} (max |Δ|; torch-fidelity's own float32 "
      f"vs float64: {_e(tf['probs64'][0])}). KID misses the 1e-6 target against the "
      f"references' own numbers (torch-fidelity {kid32([tf])}, StyleGAN2-ADA and clean-fid "
      f'{kid32([sg, clean])}), and that is their float32 arithmetic (their own KID moves by '
      f'up to {kid_own} when their features are cast to float64), not another estimator: '
      "torch-fidelity's `kid_features_to_metric` turns its float32 feature tensors into float32 "
      "numpy and builds the kernel there, clean-fid's `kernel_distance` (StyleGAN2-ADA's code) "
      'keeps the features\' float32; fed the same features in float64, every reference agrees '
      f'with gan_jax (float64 throughout) to {kid64}: the same subsets (fakes drawn first, '
      'RandomState(2020); np.random seeded 0 for the unseeded two), the same unbiased estimator. '
      "With torch-fidelity's inputs swapped its KID moves by "
      f"{_e(_rel(tf['kid'][0], tf['kid_swapped']))}, so the draw order was tested. Not compared: "
      "clean-fid's own network (StyleGAN2-ADA's TorchScript `inception-2015-12-05.pt`, a "
      "download; pytorch-fid's network on the same weights stands in, so the clean_fid row checks "
      "clean-fid's resize, quantisation, input scaling and statistics, not its network) and "
      "StyleGAN2-ADA's FID, whose covariance divides by N (`FeatureStats.get_mean_cov`), not by "
      "N − 1 as gan_jax's for every preset: its FID's covariance terms are smaller by up to 1/N "
      "relative (2e-5 at 50k). clean-fid's generator path (`compute_fid(gen=...)`) does not "
      "quantise: on float images the clean_fid preset (quantize on) is "
      f"{_pair(gen['quantized'])} away from it, quantize off {_pair(gen['feat'])}. The random "
      "weights are calibrated (Mixed_7c's output BatchNorms scaled to a mean pool feature of "
      "0.4, fc's rows projected off the mean feature: the real weights' scale, and an IS above "
      "1); torch-fidelity 0.4.0's `feature_extractor_internal_dtype='float64'` runs float32 "
      "(`helpers.text_to_dtype`), so its float64 run is a `.double()` copy of its extractor.")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--weights', default=None, help="pytorch-fid's .pth (default: random)")
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--network', action='store_true', help='the network check alone')
  parser.add_argument('--section', action='store_true', help='write the RESULTS.md section')
  parser.add_argument('--batch', type=int, default=4, help='images per size, network check')
  parser.add_argument('--sizes', type=int, nargs='+', default=[32, 331])
  parser.add_argument('--fake', type=int, default=64)
  parser.add_argument('--real', type=int, default=96)
  parser.add_argument('--big', type=int, default=4)
  parser.add_argument('--float', type=int, default=8, help="clean-fid's generator path")
  parser.add_argument('--n64', type=int, default=8, help='fakes through the float64 references')
  parser.add_argument('--date', default=str(datetime.date.today()))
  parser.add_argument('--no-fid', action='store_true',
                      help='skip the FIDs (the slow part: 2048-d matrix square roots, ~1 min each)')
  parser.add_argument('--json', default=None, help='also write the raw numbers to this file')
  parser.add_argument('--render', default=None,
                      help='rebuild the section from a --json file (nothing is computed)')
  args = parser.parse_args()
  if args.render:
    with open(args.render) as f:
      saved = json.load(f)
    text = section(saved['results'], saved['network_worst'], argparse.Namespace(**saved['args']),
                   saved['n_imgs'], saved['seconds'])
    return _output(text, args.section)

  import torch  # pylint: disable=import-outside-toplevel
  from gan_jax.metrics import inception  # pylint: disable=import-outside-toplevel

  start = time.perf_counter()
  torch.manual_seed(args.seed)
  model, inception3 = build_torch_model(args.weights, args.seed)
  if args.weights:
    print(f'weights {args.weights} sha256 {inception.weights_sha256(args.weights)}')
  with tempfile.TemporaryDirectory() as tmp:
    state_dict = inception3.state_dict()
    paths = {'zip': os.path.join(tmp, 'zip.pth'), 'legacy': os.path.join(tmp, 'legacy.pth')}
    torch.save(state_dict, paths['zip'])
    torch.save(state_dict, paths['legacy'], _use_new_zipfile_serialization=False)
    worst, _ = network_check(model, inception3, paths, args.sizes, args.batch, args.seed)
    if args.network:
      return 0 if worst <= 1e-4 else 1
    images = make_images(args.seed, args.fake, args.real, args.big, args.float)
    if not args.weights:
      cal = make_images(args.seed + 1, 4, 4, 0, 0)  # other images than the benchmark's
      calibrate(model, inception3, np.concatenate([cal['fake'], cal['real']]).transpose(
          0, 3, 1, 2).astype(np.float32) / 255)
    weights_path = os.path.join(tmp, 'weights.pth')
    torch.save(inception3.state_dict(), weights_path)
    files = write_pngs(images, os.path.join(tmp, 'images'))
    results = run_presets(model, weights_path, images, files, args.n64, not args.no_fid)
  n_imgs = {k: len(v) for k, v in images.items()}
  seconds = time.perf_counter() - start
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(dict(results=results, network_worst=worst, n_imgs=n_imgs, seconds=seconds,
                     args=vars(args)), f, indent=1)
  return _output(section(results, worst, args, n_imgs, seconds), args.section)


def _output(text: str, write: bool) -> int:
  print(text)
  if write:
    from common import write_section  # pylint: disable=import-outside-toplevel,g-bad-import-order
    write_section(BEGIN, END, text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
