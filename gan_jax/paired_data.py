"""Paired image data for image-to-image translation (pix2pix): {'input', 'target'} batches.

Pairs are formed in one of three ways (`pairs`):

  inpaint    target: an image of any source; input: the same image with one half (`mask`:
             'bottom', 'top', 'left' or 'right') replaced by 0, mid-grey, so the hole differs
             from the background (-1). The inpainting example of the GAN as an auxiliary loss
             (M. Borisyak, "Generative Adversarial Networks", HSE lecture; Isola et al. 2017,
             arXiv:1611.07004): a masked half -> the whole.
  colorize   target: an RGB image; input: its luma Y = 0.299 R + 0.587 G + 0.114 B (ITU-R
             BT.601), one channel. Weights summing to 1 keep [-1, 1] in [-1, 1]. On Stacked
             MNIST (three digits as R, G, B) the colours cannot be read off the grey image where
             strokes overlap or where a faint stroke of one digit looks like a bright one of
             another: a many-to-one inverse, where L1 regression blurs.
  native     input and target are two image features of one tfds example (`input_key`,
             `target_key`), of equal height and width; both are centre-cropped and resized
             together and scaled from uint8 to [-1, 1] (a label map of class ids, e.g.
             cityscapes' 'segmentation_label', is then a grey image of small values, and a
             bilinear resize blends ids at region borders: fine for a demonstration, a one-hot
             map resized by nearest neighbour would be the careful choice).

Sources. `inpaint` and `colorize` take any image dataset of `input_pipeline` by name, with its
splits and options: offline (no network) `mnist5k` and `stacked_mnist` (the experiments use
these, at 32×32: MNIST padded by 2 px), `digits`; and, where a user has prepared them, the tfds
image datasets `mnist`, `fashion_mnist` (inpaint), `cifar10`, `svhn_cropped`, `celeb_a`
(inpaint and colorize: they are RGB). `native` reads tfds datasets whose examples hold two
aligned images: `cityscapes` ('segmentation_label' -> 'image_left' is Isola et al.'s
labels -> photo; needs the manual download of its builder), or any other with two fixed-shape
uint8 image features. Datasets that do not fit: `cycle_gan` (unpaired: its two domains are
separate examples), `div2k` (paired low/high resolution but of varying sizes), `nyu_depth_v2`
(depth is a float tensor, not an image feature).

Splits: the source's own ('train' / 'test' of the offline sources are the held-out last 10% of
each class, see `input_pipeline`; tfds split strings for tfds). The stream of a `PairedDataset`
is that of its images (a pure function of (seed, step), host-sharded, prefetched), each batch
mapped to its pair, so a resumed run reads the same pairs.
"""
import dataclasses
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np

from gan_jax import input_pipeline
from gan_jax.configs import check_choice

PAIRS = ('inpaint', 'colorize', 'native')
MASKS = ('bottom', 'top', 'left', 'right')
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601
MASK_FILL = 0.0  # mid-grey in [-1, 1]


def inpaint_input(images: np.ndarray, mask: str = 'bottom') -> np.ndarray:
  """(B, H, W, C) images with the `mask` half (rows or columns [size // 2:] for bottom/right,
  [:size // 2] for top/left) set to MASK_FILL."""
  check_choice('mask', mask, MASKS)
  x = np.array(images, np.float32, copy=True)
  h, w = x.shape[1:3]
  rows = {'bottom': np.s_[h // 2:], 'top': np.s_[:h // 2]}.get(mask, np.s_[:])
  cols = {'right': np.s_[w // 2:], 'left': np.s_[:w // 2]}.get(mask, np.s_[:])
  x[:, rows, cols] = MASK_FILL
  return x


def colorize_input(images: np.ndarray) -> np.ndarray:
  """(B, H, W, 3) RGB in [-1, 1] -> (B, H, W, 1) luma (ITU-R BT.601 weights)."""
  if images.shape[-1] != 3:
    raise ValueError(f'colorize needs RGB images, got {images.shape[-1]} channel(s); use an RGB '
                     'source (stacked_mnist, cifar10, svhn_cropped, celeb_a)')
  return (np.asarray(images, np.float32) @ LUMA)[..., None]


@dataclasses.dataclass(frozen=True)
class TfdsPairSource:
  """Two uint8 image features of each tfds example, concatenated along channels (input first)."""
  data_source: Any
  shape: Tuple[int, int, int]   # (H, W, C_input + C_target)
  input_key: str
  target_key: str
  input_channels: int
  num_classes: int = 1
  max_value: float = 255.

  def __len__(self):
    return len(self.data_source)

  def read(self, indices):
    examples = [self.data_source[int(i)] for i in indices]

    def image(ex, key):
      x = np.asarray(ex[key])
      return x[..., None] if x.ndim == 2 else x

    pixels = np.stack([np.concatenate([image(ex, self.input_key), image(ex, self.target_key)], -1)
                       for ex in examples])
    return pixels, np.zeros(len(indices), np.int32)


def tfds_pairs(name: str, split: str = 'train', *, input_key: str, target_key: str,
               data_dir: Optional[str] = None, download: bool = False,
               **preprocess) -> Tuple[input_pipeline.ImageDataset, int]:
  """(images, input channels): a tfds dataset's two image features as one image whose first
  channels are the input, read by random access (ArrayRecord) without TensorFlow.

  Both features go through the same crop/resize (`preprocess`: image_size, crop, resize). Raises
  `input_pipeline.DatasetUnavailable` if the data is not prepared and `download` is False.
  """
  tfds = input_pipeline.import_tfds()
  builder = tfds.builder(name, data_dir=data_dir, file_format='array_record')
  if download:
    input_pipeline.download_and_prepare(builder)
  try:
    source = builder.as_data_source(split=split)
  except Exception as e:  # as input_pipeline.from_tfds
    if builder.is_prepared():
      raise
    message = input_pipeline._unavailable_message(  # pylint: disable=protected-access
        name, str(builder.data_dir_root))
    raise input_pipeline.DatasetUnavailable(message) from e
  features = builder.info.features
  shapes = {}
  for key in (input_key, target_key):
    if key not in features:
      raise ValueError(f'{name} has no feature {key!r}; its features: {", ".join(features)}')
    shape = tuple(features[key].shape)
    shapes[key] = shape + (1,) if len(shape) == 2 else shape
    if None in shapes[key]:
      raise ValueError(f'{name}: feature {key!r} has images of varying size {shape}')
  (h, w, c_in), (h2, w2, c_t) = shapes[input_key], shapes[target_key]
  if (h, w) != (h2, w2):
    raise ValueError(f'{name}: {input_key!r} is {h}×{w} but {target_key!r} is {h2}×{w2}')
  pair_source = TfdsPairSource(source, (h, w, c_in + c_t), input_key, target_key, c_in)
  return input_pipeline.ImageDataset(name, pair_source, **preprocess), c_in


class PairedDataset:
  """Image pairs: `read(indices)` and `batches(...)` give {'input', 'target', 'label'} (numpy)."""

  def __init__(self, images: input_pipeline.ImageDataset, pairs: str, mask: str = 'bottom',
               input_channels: int = 0):
    check_choice('pairs', pairs, PAIRS)
    check_choice('mask', mask, MASKS)
    self.images, self.pairs, self.mask = images, pairs, mask
    self.name = images.name
    h, w, c = images.image_shape
    if pairs == 'colorize' and c != 3:
      colorize_input(np.zeros((1, 1, 1, c)))  # raises the message
    if pairs == 'native':
      self.input_shape, self.target_shape = (h, w, input_channels), (h, w, c - input_channels)
    else:
      self.target_shape = (h, w, c)
      self.input_shape = (h, w, 1 if pairs == 'colorize' else c)

  def __len__(self):
    return len(self.images)

  def __repr__(self):
    return (f'PairedDataset({self.name!r}, pairs={self.pairs!r}, num_examples={len(self)}, '
            f'input_shape={self.input_shape}, target_shape={self.target_shape})')

  def pair(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """An image batch {'image', 'label'} -> {'input', 'target', 'label'}."""
    x = batch['image']
    if self.pairs == 'inpaint':
      inputs, target = inpaint_input(x, self.mask), x
    elif self.pairs == 'colorize':
      inputs, target = colorize_input(x), x
    else:
      c = self.input_shape[-1]
      inputs, target = x[..., :c], x[..., c:]
    return {'input': inputs, 'target': target, 'label': batch['label']}

  def read(self, indices) -> Dict[str, np.ndarray]:
    """The pairs at `indices`, in order."""
    return self.pair(self.images.read(indices))

  def batches(self, batch_size: int, seed: int = 0, **options) -> Iterator[Dict[str, np.ndarray]]:
    """This host's share of the global pair batches: `ImageDataset.batches` (same options)."""
    return map(self.pair, self.images.batches(batch_size, seed, **options))


def get(name: str, pairs: str, split: str = 'train', mask: str = 'bottom',
        input_key: Optional[str] = None, target_key: Optional[str] = None,
        **options) -> PairedDataset:
  """The paired dataset `pairs` of the image dataset `name` (see the module docstring).

  `options` are the image dataset's (image_size, crop, resize; num_examples, seed for
  stacked_mnist; data_dir, download for tfds). Raises ValueError (a bad name or option) or
  `input_pipeline.DatasetUnavailable`.
  """
  check_choice('pairs', pairs, PAIRS)
  if pairs == 'native':
    if not (input_key and target_key):
      raise ValueError("pairs='native' needs input_key and target_key, the names of two image "
                       "features, e.g. 'segmentation_label' and 'image_left' for cityscapes")
    images, c_in = tfds_pairs(name, split, input_key=input_key, target_key=target_key, **options)
    return PairedDataset(images, pairs, mask, c_in)
  if input_key or target_key:
    raise ValueError(f'input_key and target_key are options of pairs=native, not {pairs!r}')
  return PairedDataset(input_pipeline.get(name, split=split, **options), pairs, mask)
