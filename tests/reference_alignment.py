"""Dense NumPy transcriptions of the platonic-representation code's metrics (O(n^2)/O(n^3)),
for agreement tests and as the baseline of benchmarks/bench_alignment.py."""

import numpy as np


def knn(feats, k):
  sims = feats @ feats.T
  np.fill_diagonal(sims, -1e8)
  return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def mutual_knn(a, b, k):
  n = len(a)
  ka, kb = knn(a, k), knn(b, k)
  mask_a = np.zeros((n, n))
  mask_b = np.zeros((n, n))
  np.put_along_axis(mask_a, ka, 1, axis=1)
  np.put_along_axis(mask_b, kb, 1, axis=1)
  return float(np.mean((mask_a * mask_b).sum(1) / k))


def cycle_knn(a, b, k):
  ka, kb = knn(a, k), knn(b, k)
  back = ka[kb]
  return float(np.mean((back == np.arange(len(a))[:, None, None]).reshape(len(a), -1).max(1)))


def hsic_biased(K, L):
  n = K.shape[0]
  H = np.eye(n) - np.ones((n, n)) / n
  return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def hsic_unbiased(K, L):
  m = K.shape[0]
  Kt, Lt = K.copy(), L.copy()
  np.fill_diagonal(Kt, 0)
  np.fill_diagonal(Lt, 0)
  value = (np.sum(Kt * Lt.T) + np.sum(Kt) * np.sum(Lt) / ((m - 1) * (m - 2))
           - 2 * np.sum(Kt @ Lt) / (m - 2))
  return value / (m * (m - 3))


def rbf_kernel(x, sigma=1.0):
  d2 = np.sum((x[:, None] - x[None]) ** 2, axis=-1)
  median = np.median(d2[np.triu_indices(len(x), 1)])
  return np.exp(-d2 / (2 * sigma ** 2 * median))


def cka(a, b, kernel="linear", unbiased=False):
  K, L = (a @ a.T, b @ b.T) if kernel == "linear" else (rbf_kernel(a), rbf_kernel(b))
  hsic = hsic_unbiased if unbiased else hsic_biased
  return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def cknna(a, b, k):
  n = len(a)
  K, L = a @ a.T, b @ b.T

  def similarity(K, L):
    Kh, Lh = K.copy(), L.copy()
    np.fill_diagonal(Kh, -np.inf)
    np.fill_diagonal(Lh, -np.inf)
    mask_k = np.zeros((n, n))
    mask_l = np.zeros((n, n))
    np.put_along_axis(mask_k, np.argsort(-Kh, axis=1, kind="stable")[:, :k], 1, axis=1)
    np.put_along_axis(mask_l, np.argsort(-Lh, axis=1, kind="stable")[:, :k], 1, axis=1)
    mask = mask_k * mask_l
    return hsic_unbiased(mask * K, mask * L)

  return similarity(K, L) / (np.sqrt(similarity(K, K) * similarity(L, L)) + 1e-6)


def svcca_exact(a, b, dim=10):
  def top(x):
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    u, _, _ = np.linalg.svd(x, full_matrices=False)
    q, _ = np.linalg.qr(u[:, :dim] - u[:, :dim].mean(0))
    return q
  return float(np.mean(np.clip(np.linalg.svd(top(a).T @ top(b), compute_uv=False), 0, 1)))


def lcs_length(x, y):
  """Textbook LCS dynamic programme on two sequences."""
  dp = np.zeros((len(x) + 1, len(y) + 1), int)
  for i in range(1, len(x) + 1):
    for j in range(1, len(y) + 1):
      dp[i, j] = dp[i - 1, j - 1] + 1 if x[i - 1] == y[j - 1] else max(dp[i - 1, j], dp[i, j - 1])
  return int(dp[-1, -1])


def levenshtein(x, y):
  """Textbook edit distance (insert / delete / substitute cost 1)."""
  dp = np.zeros((len(x) + 1, len(y) + 1), int)
  dp[:, 0] = np.arange(len(x) + 1)
  dp[0, :] = np.arange(len(y) + 1)
  for i in range(1, len(x) + 1):
    for j in range(1, len(y) + 1):
      dp[i, j] = min(dp[i - 1, j] + 1, dp[i, j - 1] + 1,
                     dp[i - 1, j - 1] + (x[i - 1] != y[j - 1]))
  return int(dp[-1, -1])


def lcs_knn(a, b, k):
  ka, kb = knn(a, k), knn(b, k)
  return float(np.mean([lcs_length(x, y) for x, y in zip(ka, kb)]))


def edit_knn(a, b, k):
  ka, kb = knn(a, k), knn(b, k)
  return float(1 - np.mean([levenshtein(x, y) for x, y in zip(ka, kb)]) / k)
