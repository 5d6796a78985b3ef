"""The pixel models' convolutions in XLA's form and in the CPU form (``wmjax.nets.cnn``).

XLA:CPU runs a convolution's kernel gradient, and a transposed convolution, 10-35x slower inside
``lax.scan`` than alone, and every training loop here is a scan. For each form (``xla``: flax's
own ops; ``cpu``: the form ``conv_impl="auto"`` picks on a CPU) and each case, the seconds of:

- ``one``: one gradient of the loss, jitted alone;
- ``scan``: ``--scan`` gradients inside one ``lax.scan``, per gradient;
- ``seeds``: the same scan vmapped over ``--seeds`` parameter sets, per gradient per seed.

Cases: World Models' V on 64x64x3 frames (depth 16, batch 100: the ``dmc-pixels`` preset) and
Dreamer's encoder + decoder on 64x64x3 (depth 16 as the ``xsmall`` model, batch 256 frames: a
quarter of a 16 x 64 replayed batch, to keep XLA's form's timing short). Every figure is the
median of timed calls after a warm-up call. Writes JSON (``--out``).

    python benchmarks/conv_forms.py --out benchmarks/results/conv_forms-cpu.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
from timing import time_stats  # benchmarks/timing.py (this folder is on sys.path)

from wmjax.models.vae import VAEConfig, make_vae
from wmjax.nets import cnn


def vae_case(depth: int, batch: int):
  vae = make_vae(VAEConfig(obs_shape=(64, 64, 3), latent_size=32, depth=depth))
  images = jax.random.uniform(jax.random.PRNGKey(0), (batch, 64, 64, 3))

  def loss(params, x):
    return vae.loss(params, jax.random.PRNGKey(1), x)[0]

  return vae.init, loss, images


def autoencoder_case(depth: int, batch: int):
  enc, dec = cnn.ConvEncoder(depth=depth), cnn.ConvDecoder(out_shape=(64, 64, 3), depth=depth)
  images = jax.random.uniform(jax.random.PRNGKey(0), (batch, 64, 64, 3))

  def init(key):
    k1, k2 = jax.random.split(key)
    enc_params = enc.init(k1, images[:1])
    return {"enc": enc_params, "dec": dec.init(k2, enc.apply(enc_params, images[:1]))}

  def loss(params, x):
    return jnp.mean((dec.apply(params["dec"], enc.apply(params["enc"], x)) - x) ** 2)

  return init, loss, images


CASES = {"worldmodels-vae-d16-b100": lambda: vae_case(16, 100),
         "dreamer-cnn-d16-b256": lambda: autoencoder_case(16, 256)}


def bench_case(name: str, form: str, args) -> dict:
  # The benchmark picks the form for every layer.
  real = cnn._use_cpu_form   # noqa: SLF001
  cnn._use_cpu_form = lambda impl, kernel: real(form, kernel)   # noqa: SLF001
  try:
    init, loss, images = CASES[name]()
    grad = jax.grad(loss)
    params = init(jax.random.PRNGKey(0))
    stack = jnp.stack([images] * args.scan)

    def scanned(params, stack):
      return jax.lax.scan(lambda c, x: (c, grad(params, x)), 0, stack)[1]

    seeds = jax.vmap(init)(jax.random.split(jax.random.PRNGKey(0), args.seeds))
    out = {"case": name, "form": form}
    for key, fn, fn_args, per in (
        ("one", jax.jit(grad), (params, images), 1),
        ("scan", jax.jit(scanned), (params, stack), args.scan),
        ("seeds", jax.jit(jax.vmap(scanned, (0, None))), (seeds, stack),
         args.scan * args.seeds)):
      if key not in args.kinds.split(","):
        continue
      stats = time_stats(fn, *fn_args, repeats=args.repeats, max_seconds=args.max_seconds)
      out[key] = {**stats, "per_gradient_seconds": stats["seconds"] / per}
      print(f"{name:26s} {form:4s} {key:5s}: {stats['seconds'] / per * 1000:8.1f} ms per "
            f"gradient (compile {stats['compile_seconds']:.1f} s)", flush=True)
    return out
  finally:
    cnn._use_cpu_form = real   # noqa: SLF001


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cases", default=",".join(CASES))
  parser.add_argument("--forms", default="cpu,xla")
  parser.add_argument("--kinds", default="one,scan,seeds", help="which timings (see above)")
  parser.add_argument("--scan", type=int, default=3, help="gradients per scan")
  parser.add_argument("--seeds", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--max-seconds", type=float, default=60.0)
  parser.add_argument("--out", help="write JSON here")
  args = parser.parse_args()
  rows = [bench_case(c, f, args) for c in args.cases.split(",") for f in args.forms.split(",")]
  merged = {}
  if args.out and pathlib.Path(args.out).exists():   # keep rows of other cases and kinds
    for row in json.loads(pathlib.Path(args.out).read_text())["rows"]:
      merged[(row["case"], row["form"])] = row
  for row in rows:
    merged[(row["case"], row["form"])] = {**merged.get((row["case"], row["form"]), {}), **row}
  rows = list(merged.values())
  result = {"benchmark": "conv_forms", "device": f"{jax.default_backend()}:"
            f"{jax.devices()[0].device_kind}", "machine": platform.machine(),
            "jax": jax.__version__, "date": time.strftime("%Y-%m-%d"),
            "scan": args.scan, "seeds": args.seeds, "rows": rows}
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
