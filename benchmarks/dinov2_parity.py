"""gan_jax's DINOv2 ViT-L/14 features against timm's, with dgm-eval's preprocessing (FD_DINOv2).

Needs torch, torchvision and timm beside the project's jax/flax, in a separate venv (never the
project's own: torch is not a gan_jax dependency, and every import of torch, torchvision or timm
stays inside this file). On this workplace's x86_64 machines:

  pip install torch==2.14.1 torchvision==0.29.1 timm==1.0.31

Then, from the repository root (~2 min on 2 cores, 6 GB of memory, 2.3 GB in a temp dir):

  python benchmarks/dinov2_parity.py             # prints the RESULTS.md section
  python benchmarks/dinov2_parity.py --section   # and writes it

Nothing is downloaded. The weights are the official `dinov2_vitl14_pretrain.pth` when given
(--weights), else random ones (numpy seed --seed; the official state_dict's names and shapes,
`mask_token` included), saved with `torch.save` in the zip and the legacy format and read by
gan_jax's torch-free `dinov2.load_params` (every array compared with what was saved).

Reference: dgm-eval's `DINOv2Encoder` (Stein et al. 2023, arXiv:2306.04675) runs
`torch.hub.load('facebookresearch/dinov2', 'dinov2_vitl14')` on `TF.Resize((224, 224), BICUBIC)`,
`TF.ToTensor()`, `TF.Normalize(ImageNet mean, std)` of each PIL image. The hub code cannot be
fetched here; timm's `vit_large_patch14_dinov2.lvd142m` (pretrained=False, img_size=224) is the
same network (patch 14, 1024 wide, 24 blocks, 16 heads, LayerScale, LayerNorm eps 1e-6, the
final norm's CLS token), given the official state_dict less `mask_token`, with its 257-token
`pos_embed` set to the hub's `interpolate_pos_encoding` of the 37 × 37 table, computed here in
torch as the hub does: `F.interpolate(bicubic, antialias=False, scale_factor=(16.1 / 37,) * 2)`.
(timm's own resampling, a size with antialias=True, is not the hub's: reported too, as the
difference it makes.)

Images (numpy seed --seed): uint8 RGB, 2 of 32 × 32 (upsampled to 224, as CIFAR-10) and 2 of
256 × 256 (downsampled): smooth colour fields with an edge and noise. gan_jax gets
x = u / 127.5 - 1 (its quantisation gives u back exactly) through `dinov2.preprocess` and
`DINOv2ViT` (float32, Precision.HIGHEST, CPU); torch runs in float32, and in float64 (`.double()`
of the model, the inputs and the pos-embed interpolation) to show what float32 rounding amounts
to. Target: features within float32 rounding.
"""
import argparse
import datetime
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

BEGIN, END = '<!-- dinov2_parity:begin -->', '<!-- dinov2_parity:end -->'
TITLE = '## DINOv2 ViT-L/14 parity with timm'
TIMM_NAME = 'vit_large_patch14_dinov2.lvd142m'


def random_state_dict(seed: int) -> dict:
  """The official state_dict's names and shapes with seeded values: weights N(0, 1/fan_in),
  biases N(0, 0.02²), LayerNorm scales U(0.5, 1.5), LayerScale gammas U(0.05, 0.5), tokens and
  position table N(0, 0.1²) (LayerScale's 1e-5 init would make every block nearly the identity)."""
  from gan_jax.metrics import dinov2  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  shapes = {**dinov2.torch_state_dict_shapes(), 'mask_token': (1, dinov2.FEATURE_DIM)}
  out = {}
  for name, shape in shapes.items():
    if name.endswith('.gamma'):
      value = rng.uniform(0.05, 0.5, shape)
    elif name.endswith('weight') and len(shape) == 1:
      value = rng.uniform(0.5, 1.5, shape)
    elif name.endswith('bias'):
      value = rng.normal(0, 0.02, shape)
    elif name in ('cls_token', 'pos_embed', 'mask_token'):
      value = rng.normal(0, 0.1, shape)
    else:
      value = rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(np.prod(shape[1:])))
    out[name] = np.asarray(value, np.float32)
  return out


def make_images(seed: int) -> dict:
  """{side: (2, side, side, 3) uint8}: smooth colour fields (bilinear upsampling of 4 × 4
  noise), a vertical edge and pixel noise, at 32 and 256 px."""
  rng = np.random.default_rng(seed)
  out = {}
  for side in (32, 256):
    coarse = rng.uniform(0, 255, (2, 4, 4, 3))
    t = np.linspace(0, 3, side)
    lo = np.minimum(t.astype(int), 2)
    ramp = np.zeros((side, 4))  # linear interpolation weights, side ← 4
    ramp[np.arange(side), lo] = 1 - (t - lo)
    ramp[np.arange(side), lo + 1] = t - lo
    field = np.einsum('hi,bijc,wj->bhwc', ramp, coarse, ramp)
    field[:, :, side // 2:] = 255 - field[:, :, side // 2:]  # an edge
    field += rng.normal(0, 12, field.shape)
    out[side] = np.clip(np.round(field), 0, 255).astype(np.uint8)
  return out


def hub_pos_embed(pos_embed, grid: int, offset: float = 0.1):
  """facebookresearch/dinov2's `interpolate_pos_encoding` for a square `grid`, in torch, in the
  table's dtype (the hub: float32)."""
  import torch  # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel
  m = int(round((pos_embed.shape[1] - 1) ** 0.5))
  dim = pos_embed.shape[-1]
  table = pos_embed[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2)
  scale = float(grid + offset) / m
  table = F.interpolate(table, mode='bicubic', antialias=False, scale_factor=(scale, scale))
  assert table.shape[-2:] == (grid, grid)
  return torch.cat([pos_embed[:, :1], table.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)


def dgm_eval_inputs(images):
  """dgm-eval's DINOv2Encoder.transform (clean_resize=False) of each uint8 image: NCHW float32."""
  import torch  # pylint: disable=import-outside-toplevel
  import torchvision.transforms as TF  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
  transform = TF.Compose([TF.Resize((224, 224), TF.InterpolationMode.BICUBIC), TF.ToTensor()])
  return torch.stack([TF.Normalize(mean, std)(transform(Image.fromarray(u))) for u in images])


def timm_model(state_dict: dict, pos_embed):
  """timm's ViT-L/14 DINOv2 at img_size=224 holding `state_dict` (less mask_token) and the
  257-token `pos_embed`; strict load, so every name matched."""
  import timm  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  model = timm.create_model(TIMM_NAME, pretrained=False, img_size=224, num_classes=0).eval()
  tensors = {k: torch.from_numpy(v) for k, v in state_dict.items() if k != 'mask_token'}
  tensors['pos_embed'] = pos_embed
  model.load_state_dict(tensors, strict=True)
  return model


def _e(x):
  return f'{x:.1e}'


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--weights', default=None,
                      help='dinov2_vitl14_pretrain.pth (default: random weights)')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--section', action='store_true', help='write the RESULTS.md section')
  parser.add_argument('--date', default=str(datetime.date.today()))
  args = parser.parse_args()

  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from gan_jax.metrics import dinov2  # pylint: disable=import-outside-toplevel

  start = time.perf_counter()
  torch.set_num_threads(os.cpu_count())
  images = make_images(args.seed)
  res = {}

  # --- Weights: one state_dict, torch.save'd in both formats, read back without torch. ---
  if args.weights:
    state_dict = {k: v.numpy() for k, v in torch.load(args.weights, map_location='cpu').items()}
  else:
    state_dict = random_state_dict(args.seed)
  res['params'] = sum(v.size for k, v in state_dict.items() if k != 'mask_token')
  with tempfile.TemporaryDirectory() as tmp:
    for fmt in ('zip', 'legacy'):
      path = os.path.join(tmp, f'{fmt}.pth')
      torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()}, path,
                 _use_new_zipfile_serialization=fmt == 'zip')
      res[f'{fmt}_bytes'] = os.path.getsize(path)
      t0 = time.perf_counter()
      raw = dinov2.read_torch_state_dict(path)
      res[f'{fmt}_read_s'] = time.perf_counter() - t0
      assert list(raw) == list(state_dict), f'{fmt}: names or order differ'
      assert all(np.array_equal(raw[k], state_dict[k]) for k in state_dict), f'{fmt}: values'
      del raw
      if fmt == 'zip':
        t0 = time.perf_counter()
        variables = dinov2.load_params(path)
        res['load_s'] = time.perf_counter() - t0
    print(f'weights: {res["params"]:,} parameters; zip {res["zip_bytes"]:,} B read in '
          f'{res["zip_read_s"]:.1f} s, legacy {res["legacy_bytes"]:,} B in '
          f'{res["legacy_read_s"]:.1f} s, load_params {res["load_s"]:.1f} s', flush=True)

  # --- gan_jax: preprocess (jit per input size) and the network (jit once, 2 × 224²). ---
  model = dinov2.vit_large_14()
  preprocess = jax.jit(dinov2.preprocess)
  net = jax.jit(lambda v, x: model.apply(v, x)['cls'])
  ours, ours_pre = {}, {}
  t0 = time.perf_counter()
  for side, u in images.items():
    ours_pre[side] = np.asarray(preprocess(jnp.asarray(u, jnp.float32) / 127.5 - 1))
    ours[side] = np.asarray(net(variables, ours_pre[side]))
  res['jax_s'] = time.perf_counter() - t0
  print(f'gan_jax: {res["jax_s"]:.0f} s (compile included)', flush=True)

  # --- Reference: dgm-eval's transform, timm's network with the hub's position embedding. ---
  inputs = {side: dgm_eval_inputs(u) for side, u in images.items()}
  res['preprocess'] = max(np.abs(ours_pre[s] - inputs[s].numpy().transpose(0, 2, 3, 1)).max()
                          for s in images)
  # The network alone: the reference's own inputs into gan_jax's network.
  same_input = {s: np.asarray(net(variables, inputs[s].numpy().transpose(0, 2, 3, 1)))
                for s in images}
  table = torch.from_numpy(state_dict['pos_embed'])
  ours_pos = np.asarray(dinov2.interpolate_pos_embed(state_dict['pos_embed'], (16, 16),
                                                     (224, 224)))
  del variables
  res['pos_vs_f64'] = np.abs(ours_pos - hub_pos_embed(table.double(), 16).numpy()).max()
  res['pos_f32_vs_f64'] = (hub_pos_embed(table, 16).double()
                           - hub_pos_embed(table.double(), 16)).abs().max().item()
  t0 = time.perf_counter()
  ref = timm_model(state_dict, hub_pos_embed(table, 16))
  with torch.no_grad():
    ref32 = {s: ref(x).numpy() for s, x in inputs.items()}
    # timm's own resampling of the table (antialias=True, to a size), as its dynamic_img_size
    # or a pretrained load at img_size=224 computes it: not what dgm-eval's hub model sees.
    from timm.layers import resample_abs_pos_embed  # pylint: disable=import-outside-toplevel
    timm_pos = resample_abs_pos_embed(table, (16, 16), (37, 37), num_prefix_tokens=1)
    res['timm_pos'] = (timm_pos - hub_pos_embed(table, 16)).abs().max().item()
    ref.pos_embed.data.copy_(timm_pos)
    timm_own = {s: ref(x).numpy() for s, x in inputs.items()}
    ref = ref.double()
    ref.pos_embed.data.copy_(hub_pos_embed(table.double(), 16))
    ref64 = {s: ref(x.double()).numpy() for s, x in inputs.items()}
  res['torch_s'] = time.perf_counter() - t0
  del ref
  print(f'torch: {res["torch_s"]:.0f} s', flush=True)

  rows = []
  for side in images:
    scale = np.abs(ref64[side]).max()
    rows.append({
        'side': side, 'scale': scale,
        'ours_vs_ref32': np.abs(ours[side] - ref32[side]).max(),
        'ours_vs_ref64': np.abs(ours[side] - ref64[side]).max(),
        'ref32_vs_ref64': np.abs(ref32[side] - ref64[side]).max(),
        'net_vs_ref32': np.abs(same_input[side] - ref32[side]).max(),
        'timm_own': np.abs(timm_own[side] - ref32[side]).max(),
        'cos': min(float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
                   for a, b in zip(ours[side], ref64[side])),
        'spread': np.abs(ref64[side][0] - ref64[side][1]).max()})
    print(rows[-1], flush=True)
  text = section(rows, res, args, time.perf_counter() - start)
  print(text)
  if args.section:
    from common import write_section  # pylint: disable=import-outside-toplevel,g-bad-import-order
    write_section(BEGIN, END, text)
  worst = max(r['ours_vs_ref64'] / max(r['ref32_vs_ref64'], 1e-30) for r in rows)
  return 0 if worst <= 10 else 1


def section(rows, res, args, seconds) -> str:
  """The RESULTS.md section: setup, the table, what it says."""
  import PIL  # pylint: disable=import-outside-toplevel
  import timm  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  import torchvision  # pylint: disable=import-outside-toplevel
  from importlib import metadata  # pylint: disable=import-outside-toplevel
  from common import machine  # pylint: disable=import-outside-toplevel,g-bad-import-order
  versions = (f'torch {torch.__version__} (CPU), torchvision {torchvision.__version__}, timm '
              f'{timm.__version__}, Pillow {PIL.__version__}, numpy {np.__version__}, flax '
              f'{metadata.version("flax")}')
  weights = (f'the official `{os.path.basename(args.weights)}`' if args.weights else
             f'random (numpy seed {args.seed}: weights N(0, 1/fan_in), LayerScale gammas '
             'U(0.05, 0.5), LayerNorm scales U(0.5, 1.5))')
  rel = lambda r, k: f'{_e(r[k])} ({_e(r[k] / r["scale"])})'
  lines = [
      BEGIN, TITLE, '',
      f'`python benchmarks/dinov2_parity.py --section` ({args.date}; {machine()}; {versions}; '
      f'{seconds / 60:.0f} min). Weights: {weights}; {res["params"]:,} parameters, '
      '`torch.save`d in the official state_dict layout (zip '
      f'{res["zip_bytes"] / 2**30:.2f} GiB, and the legacy format) and read by gan_jax without '
      f'torch: every array equal (zip read in {res["zip_read_s"]:.0f} s, legacy in '
      f'{res["legacy_read_s"]:.0f} s; `load_params` {res["load_s"]:.0f} s). Images (numpy seed '
      f'{args.seed}): 2 uint8 RGB of 32 × 32 and 2 of 256 × 256 (smooth colour fields, an edge, '
      'noise). Reference: dgm-eval\'s transform (`TF.Resize((224, 224), BICUBIC)` on the PIL '
      'image, `ToTensor`, ImageNet `Normalize`) and timm\'s `vit_large_patch14_dinov2` '
      '(pretrained=False, img_size=224, strict load of the same state_dict less `mask_token`) '
      "with the hub's 224 px position embedding (`F.interpolate(bicubic, antialias=False, "
      "scale_factor=16.1/37)` of the 37 × 37 table), in float32 and float64; gan_jax: "
      '`dinov2.preprocess` of u/127.5 − 1 and `DINOv2ViT` in float32 (Precision.HIGHEST), CPU.',
      '',
      'Max |Δ| of the 1024-d CLS features (in brackets: relative to max |feature|, '
      f'{rows[0]["scale"]:.2f} and {rows[1]["scale"]:.2f}); "network alone" feeds the '
      "reference's own preprocessed tensor to gan_jax's network.",
      '',
      '| images | gan_jax vs timm f32 | gan_jax vs timm f64 | timm f32 vs f64 | network alone '
      'vs timm f32 | min cosine vs f64 | timm\'s own pos-embed resampling vs hub\'s |',
      '|---|---:|---:|---:|---:|---:|---:|']
  for r in rows:
    lines.append(
        f'| 2 × {r["side"]}² → 224² | {rel(r, "ours_vs_ref32")} | {rel(r, "ours_vs_ref64")} | '
        f'{rel(r, "ref32_vs_ref64")} | {rel(r, "net_vs_ref32")} | {r["cos"]:.9f} | '
        f'{rel(r, "timm_own")} |')
  lines += [
      '',
      f'Preprocessing: gan_jax against torchvision on the same uint8 images, max |Δ| '
      f'{_e(res["preprocess"])} of the normalised input (PIL\'s 8-bit bicubic reproduced bit for '
      'bit; what remains is the float32 division). Position embedding at 224 px: gan_jax against '
      f'the hub\'s call in float64 {_e(res["pos_vs_f64"])}, the hub\'s own float32 against '
      f'float64 {_e(res["pos_f32_vs_f64"])}; timm\'s `resample_abs_pos_embed` (a size, '
      f'antialias=True) differs from the hub\'s by {_e(res["timm_pos"])} (max |Δ|, on this table '
      'of std 0.1) and moves the features by the last column: a timm model at 224 px does not give '
      "dgm-eval's FD_DINOv2. Features of two images of one size differ by "
      f'{_e(rows[0]["spread"])} and {_e(rows[1]["spread"])} (max |Δ|), so the agreement is not '
      'that of a constant.',
      END]
  return '\n'.join(lines)


if __name__ == '__main__':
  sys.exit(main())
