"""MBPO against brax's SAC on the same env steps and seeds: one sample-efficiency figure.

Runs (or, with ``--reuse``, keeps the runs already in ``--out``):

  wmjax train mbpo --env dmc/CartpoleSwingup --steps 12500 --seeds 2   (50k env steps, repeat 4)
  wmjax train sac  --env dmc/CartpoleSwingup --steps 50000 --seeds 2
  wmjax train mbpo --env brax/halfcheetah --steps 50000 --seeds 2
  wmjax train sac  --env brax/halfcheetah --steps 50000 --seeds 2

then ``wmjax compare`` of all four at 20k and 50k env steps: ``mbpo_vs_sac.png`` (return against
env steps and against wall-clock) and ``mbpo_vs_sac.json`` (the table).

MBPO's paper (Janner et al. 2019): Hopper reaches about 3000 at 100k steps where SAC needs
about 1M. The runs here are sized for a 2-core CPU (see the README for the figures measured).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

RUNS = {
    "mbpo-cartpole-cpu": ["mbpo", "--env", "dmc/CartpoleSwingup", "--steps", "12500",
                          "--seeds", "2"],
    "sac-cartpole-cpu": ["sac", "--env", "dmc/CartpoleSwingup", "--steps", "50000",
                         "--seeds", "2"],
    "mbpo-halfcheetah-cpu": ["mbpo", "--env", "brax/halfcheetah", "--steps", "50000",
                             "--seeds", "2"],
    "sac-halfcheetah-cpu": ["sac", "--env", "brax/halfcheetah", "--steps", "50000",
                            "--seeds", "2"],
}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("experiments/results"),
                      help="folder for the run folders and the figure")
  parser.add_argument("--reuse", action="store_true",
                      help="keep run folders that already hold a run instead of training")
  parser.add_argument("--only", nargs="*", choices=sorted(RUNS), default=None,
                      help="train only these runs (the figure still uses all that exist)")
  args = parser.parse_args()
  wmjax = [sys.executable, "-m", "wmjax.cli"]
  for name, cmd in RUNS.items():
    folder = args.out / name
    if (args.only is not None and name not in args.only) or (
        args.reuse and (folder / "config.json").exists()):
      continue
    subprocess.run([*wmjax, "train", *cmd, "--out", str(folder)], check=True)
  existing = [str(args.out / n) for n in RUNS if (args.out / n / "metrics.jsonl").exists()]
  figure = args.out / "mbpo_vs_sac.png"
  table = args.out / "mbpo_vs_sac.json"
  subprocess.run([*wmjax, "compare", *existing, "--at", "20000,50000", "--out", str(figure),
                  "--json", str(table)], check=True)
  print(json.dumps(json.loads(table.read_text()), indent=1)[:2000])


if __name__ == "__main__":
  main()
