"""Inception Score: exp(E_x KL(p(y|x) ‖ p(y))), over splits of the samples.

Salimans et al. 2016, "Improved Techniques for Training GANs" (arXiv:1606.03498), whose code
(openai/improved-gan) takes p(y|x) = softmax(pool3 · W) without the fc layer's bias: the
evaluator feeds those probabilities by default (config.eval.is_logits). Each of
`splits` consecutive chunks (the reference's `i*N//splits` boundaries, no shuffling) gets its own
marginal p(y) = mean of its rows; the score is (mean, std) over the chunks, std with ddof=0 as
the reference (openai/improved-gan, 10 splits of 50k samples). It is 1 when every p(y|x) is the
same and C when the predictions are one-hot and balanced over C classes. Computed in float64,
with 0·log 0 = 0.
"""
import numpy as np
import scipy.special


def inception_score(probs, splits: int = 10, shuffle_seed=None) -> tuple:
  """(mean, std) of the IS of (N, C) class probabilities (softmax outputs, rows summing to 1).

  shuffle_seed: None keeps the samples' order (improved-gan, StyleGAN2-ADA); an int permutes
  them first by `RandomState(shuffle_seed).permutation(N)` (torch-fidelity, seed 2020).
  """
  probs = np.asarray(probs, np.float64)
  if probs.ndim != 2:
    raise ValueError(f'expected (N, C) probabilities, got shape {probs.shape}')
  n = probs.shape[0]
  if not 1 <= splits <= n:
    raise ValueError(f'splits must be in [1, {n}], got {splits}')
  if shuffle_seed is not None:
    probs = probs[np.random.RandomState(shuffle_seed).permutation(n)]
  scores = []
  for i in range(splits):
    part = probs[i * n // splits:(i + 1) * n // splits]
    marginal = part.mean(axis=0, keepdims=True)
    kl = scipy.special.rel_entr(part, marginal).sum(axis=1)  # KL(p(y|x) ‖ p(y)) per sample
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))
