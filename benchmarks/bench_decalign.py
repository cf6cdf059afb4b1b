"""One DecAlign training step at MOSI shapes: jaxdisent (jit) vs the same step in eager PyTorch.

MOSI-sized batch: 3 modalities, length 50, widths 768 / 5 / 20, batch 32, model width 32, K = 7
prototypes, 5 EM steps, 50 Sinkhorn iterations (eps 0.1), Adam + clipping. Prints, for each
framework, the full step, the step without the heterogeneity (GMM + OT) term, and the
heterogeneity term alone (forward + backward on the pooled unique features), so the time splits
into the OT/GMM part and the rest. The PyTorch step is written here to mirror jaxdisent's model
and losses (same layers, same EM, a log-domain 3-marginal Sinkhorn); it is what a user porting the
public PyTorch DecAlign would run.

  pip install -e '.[bench]'   # torch==2.13.0, CPU
  python benchmarks/bench_decalign.py [--steps=30] [--threads=N]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

WIDTHS, LENGTH, BATCH, D, K = (768, 5, 20), 50, 32, 32, 7


def timed(fn, steps: int, warmup: int = 3) -> float:
  """Milliseconds per call."""
  for _ in range(warmup):
    fn()
  start = time.perf_counter()
  for _ in range(steps):
    fn()
  return 1000 * (time.perf_counter() - start) / steps


# ---- jaxdisent ---------------------------------------------------------------------------------

def jax_times(steps: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jaxdisent.losses import decalign as L  # pylint: disable=g-import-not-at-top
  from jaxdisent.methods import make_method  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.config import load_config  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.parallel import DataParallel  # pylint: disable=g-import-not-at-top
  from jaxdisent.train.state import TrainState  # pylint: disable=g-import-not-at-top

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = {}
  batch_np = None
  for name, het in (("full step", True), ("step without heterogeneity", False)):
    config = load_config(os.path.join(root, "configs", "decalign_synthetic.py"), {
        "data.synthetic.widths": tuple(WIDTHS),
        "data.synthetic.lengths": (LENGTH,) * 3, "data.synthetic.min_length_fraction": 1.0,
        "model.width": D, "loss.num_prototypes": K, "train.batch_size": BATCH,
        "loss.heterogeneity": het})
    method = make_method(config)
    parallel = DataParallel(method, method.optimizer(), config.seed, devices=jax.devices()[:1])
    params, model_state = method.init(jax.random.key(0))
    state = parallel.place_state(TrainState.create(params, method.optimizer().init(params),
                                                   model_state))
    if batch_np is None:
      batch_np = method.local_batch(0, 0, 0, BATCH)
    batch = parallel.place_batch(batch_np)
    holder = [state]

    def step():
      holder[0], metrics = parallel.step(holder[0], batch)
      jax.block_until_ready(metrics["loss"])

    out[name] = timed(step, steps)
  feats = [jax.random.normal(jax.random.key(i), (BATCH, D)) for i in range(3)]
  het_grad = jax.jit(jax.value_and_grad(lambda f: L.heterogeneity_loss(f, num_prototypes=K)[0]))
  out["heterogeneity term (fwd+bwd)"] = timed(lambda: jax.block_until_ready(het_grad(feats)), steps)
  return out, batch_np


# ---- PyTorch mirror ------------------------------------------------------------------------------

def torch_times(batch_np, steps: int) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  class MLP(nn.Module):
    def __init__(self, i, h, o):
      super().__init__()
      self.a, self.b = nn.Linear(i, h), nn.Linear(h, o)

    def forward(self, x):
      return self.b(nn.functional.gelu(self.a(x)))

  class Cross(nn.Module):
    def __init__(self, d, heads=4):
      super().__init__()
      self.heads = heads
      self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
      self.q, self.k, self.v, self.o = (nn.Linear(d, d), nn.Linear(d, d, bias=False),
                                        nn.Linear(d, d), nn.Linear(d, d))
      self.ff = MLP(d, 2 * d, d)

    def forward(self, x, ctx, mask):
      b, l, d = x.shape
      h = self.heads
      q = self.q(self.n1(x)).view(b, l, h, d // h)
      c = self.n2(ctx)
      k = self.k(c).view(b, -1, h, d // h)
      v = self.v(c).view(b, -1, h, d // h)
      logits = torch.einsum("blhd,bshd->bhls", q, k) / math.sqrt(d // h)
      logits = logits.masked_fill(mask[:, None, None, :] == 0, -1e9)
      att = torch.einsum("bhls,bshd->blhd", logits.softmax(-1), v).reshape(b, l, d)
      x = x + self.o(att)
      return x + self.ff(self.n3(x))

  def masked_mean(x, m):
    return (x * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1.0)

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.proj = nn.ModuleList([nn.Conv1d(w, D, 1) for w in WIDTHS])
      self.unique = nn.ModuleList([MLP(D, D, D) for _ in WIDTHS])
      self.common = MLP(D, D, D)
      self.homo = nn.ModuleList([MLP(D, D, D) for _ in WIDTHS])
      self.cross = nn.ModuleList([Cross(D) for _ in WIDTHS])
      self.head = MLP(2 * len(WIDTHS) * D, D, 1)

    def forward(self, xs, masks):
      seq_u, pu, pc, hom = [], [], [], []
      for m, (x, mask) in enumerate(zip(xs, masks)):
        h = self.proj[m]((x * mask[..., None]).transpose(1, 2)).transpose(1, 2)
        u, c = self.unique[m](h), self.common(h)
        seq_u.append(u)
        pu.append(masked_mean(u, mask))
        pc.append(masked_mean(c, mask))
        hom.append(self.homo[m](pc[-1]))
      fused = []
      for m in range(len(xs)):
        others = [j for j in range(len(xs)) if j != m]
        ctx = torch.cat([seq_u[j] for j in others], 1)
        cm = torch.cat([masks[j] for j in others], 1)
        fused.append(masked_mean(self.cross[m](seq_u[m], ctx, cm), masks[m]))
      return self.head(torch.cat(fused + pc, -1)).squeeze(-1), pu, pc, hom

  def gmm(x, steps=5, floor=1e-4):
    n = x.shape[0]
    with torch.no_grad():
      xd = x.detach()
      idx = [int(((xd - xd.mean(0)) ** 2).sum(1).argmax())]
      dist = ((xd - xd[idx[0]]) ** 2).sum(1)
      for _ in range(K - 1):
        idx.append(int(dist.argmax()))
        dist = torch.minimum(dist, ((xd - xd[idx[-1]]) ** 2).sum(1))
    means = x[idx]
    var = (x.var(0, unbiased=False) + floor).expand(K, -1)
    mix = torch.full((K,), 1.0 / K)

    def resp(mix, means, var):
      logp = -0.5 * (((x[:, None] - means[None]) ** 2) / var[None] + torch.log(2 * math.pi * var[None])).sum(-1)
      return torch.softmax(torch.log(mix.clamp_min(1e-12))[None] + logp, 1)

    for _ in range(steps):
      r = resp(mix, means, var)
      nk = r.sum(0) + 1e-10
      means = (r.T @ x) / nk[:, None]
      var = ((r.T @ x ** 2) / nk[:, None] - means ** 2).clamp_min(0) + floor
      mix = nk / n
    return mix, means, var, resp(mix, means, var)

  def heterogeneity(feats, eps=0.1, iters=50):
    g = [gmm(f) for f in feats]
    pts = [torch.cat([m, v.sqrt()], 1) for _, m, v, _ in g]
    sq = lambda a, b: ((a[:, None] - b[None]) ** 2).sum(-1)
    cost = sq(pts[0], pts[1])[:, :, None] + sq(pts[0], pts[2])[:, None] + sq(pts[1], pts[2])[None]
    a = [(w / w.sum()).detach() for w, _, _, _ in g]
    with torch.no_grad():
      c = cost.detach()
      f = [torch.zeros(K) for _ in range(3)]
      for _ in range(iters):
        for m in range(3):
          tot = f[0][:, None, None] + f[1][None, :, None] + f[2][None, None, :] - f[m].reshape(
              [K if i == m else 1 for i in range(3)])
          lse = torch.logsumexp(((tot - c) / eps).movedim(m, 0).reshape(K, -1), 1)
          f[m] = eps * torch.log(a[m]) - eps * lse
      plan = torch.exp((f[0][:, None, None] + f[1][None, :, None] + f[2][None, None, :] - c) / eps)
    loss = (plan * cost).sum()
    s2p = []
    for x_, y_ in [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]:
      t = plan.sum(dim=tuple(i for i in range(3) if i not in (x_, y_)))
      t = t if x_ < y_ else t.T
      t = t / t.sum(1, keepdim=True).clamp_min(1e-12)
      target = g[x_][3] @ (t @ g[y_][1])
      s2p.append(((feats[x_] - target) ** 2).mean())
    return loss + torch.stack(s2p).mean()

  def moments(x):
    mu = x.mean(0)
    cen = x - mu
    cov = cen.T @ cen / x.shape[0]
    skew = ((cen / (cov.diagonal() + 1e-6).sqrt()) ** 3).mean(0)
    return mu, cov, skew

  def homogeneity(feats):
    total = 0.0
    d = feats[0].shape[1]
    for a, b in [(0, 1), (0, 2), (1, 2)]:
      ma, ca, sa = moments(feats[a])
      mb, cb, sb = moments(feats[b])
      total = total + ((ma - mb) ** 2).mean() + ((ca - cb) ** 2).mean() + ((sa - sb) ** 2).mean()
      kern = lambda x, y: sum(torch.exp(-torch.cdist(x, y) ** 2 / (2 * h * h * d)) for h in (0.5, 1, 2, 4))
      total = total + kern(feats[a], feats[a]).mean() + kern(feats[b], feats[b]).mean() - 2 * kern(
          feats[a], feats[b]).mean()
    return total / 3

  torch.manual_seed(0)
  names = ("m0", "m1", "m2")
  xs = [torch.from_numpy(np.array(batch_np[n])) for n in names]
  masks = [torch.from_numpy(np.array(batch_np[n + "_mask"])) for n in names]
  label = torch.from_numpy(np.array(batch_np["label"]))
  out = {}
  for name, het in (("full step", True), ("step without heterogeneity", False)):
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
      opt.zero_grad()
      pred, pu, pc, hom = net(xs, masks)
      loss = (pred - label).abs().mean()
      loss = loss + torch.stack([(nn.functional.cosine_similarity(u, c, dim=-1) ** 2).mean()
                                 for u, c in zip(pu, pc)]).mean()
      if het:
        loss = loss + 0.05 * heterogeneity(pu)
      loss = loss + 0.05 * homogeneity(hom)
      loss.backward()
      torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
      opt.step()

    out[name] = timed(step, steps)
  feats = [torch.randn(BATCH, D, requires_grad=True) for _ in range(3)]

  def het_only():
    for f in feats:
      f.grad = None
    heterogeneity(feats).backward()

  out["heterogeneity term (fwd+bwd)"] = timed(het_only, steps)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
  args = parser.parse_args()
  jx, batch_np = jax_times(args.steps)
  try:
    import torch  # pylint: disable=g-import-not-at-top
    if args.threads:
      torch.set_num_threads(args.threads)
    pt = torch_times(batch_np, args.steps)
  except ImportError:
    pt = None
    print("torch not installed (pip install -e '.[bench]'): PyTorch column skipped")
  print(f"DecAlign step, MOSI shapes (3 modalities, length {LENGTH}, widths "
        f"{'/'.join(map(str, WIDTHS))}, batch {BATCH}, d {D}, K {K}), ms per call, CPU:")
  for name in jx:
    line = f"  {name:32s} jaxdisent {jx[name]:8.2f} ms"
    if pt:
      line += f"   PyTorch eager {pt[name]:8.2f} ms   speed-up {pt[name] / jx[name]:5.2f}x"
    print(line)
  rest = jx["step without heterogeneity"]
  share = (jx["full step"] - rest) / jx["full step"]
  print(f"  jaxdisent split: OT/GMM part {jx['full step'] - rest:.2f} ms ({100 * share:.0f}% of the "
        f"step), rest {rest:.2f} ms")
  if pt:
    rest_pt = pt["step without heterogeneity"]
    print(f"  PyTorch split:   OT/GMM part {pt['full step'] - rest_pt:.2f} ms, rest {rest_pt:.2f} ms")


if __name__ == "__main__":
  main()
