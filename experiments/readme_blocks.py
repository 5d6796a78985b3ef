"""Runs every Python code block of README.md as written, each on its own in a fresh process, and
reports how long each took (the README says how long its long blocks take; this keeps it true).

    python experiments/readme_blocks.py              # all blocks (several minutes on a 2-core CPU)
    python experiments/readme_blocks.py --only 1 3   # blocks 1 and 3 (numbered from 1)
    python experiments/readme_blocks.py --list       # the blocks' first lines

Exit status 1 if any block fails; the results go to ``experiments/results/readme_blocks.json``.
(`tests/test_readme.py` checks in CI, without running them, that the blocks compile and import,
and that every `wmjax ...` command parses.)
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def python_blocks(readme: pathlib.Path = ROOT / "README.md") -> list[str]:
  return re.findall(r"```python\n(.*?)```", readme.read_text(), flags=re.S)


def run_block(code: str, timeout: float) -> tuple[bool, float, str]:
  with tempfile.TemporaryDirectory() as tmp:
    path = pathlib.Path(tmp) / "block.py"
    path.write_text(code)
    start = time.perf_counter()
    try:
      proc = subprocess.run([sys.executable, str(path)], cwd=tmp, capture_output=True,
                            text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
      return False, time.perf_counter() - start, f"timed out after {timeout:g} s"
    seconds = time.perf_counter() - start
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-8:]
    return proc.returncode == 0, seconds, "\n".join(tail)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", type=int, nargs="*", help="block numbers (from 1) to run")
  parser.add_argument("--list", action="store_true", help="list the blocks and exit")
  parser.add_argument("--timeout", type=float, default=1800, help="seconds per block")
  args = parser.parse_args(argv)
  blocks = python_blocks()
  chosen = args.only or list(range(1, len(blocks) + 1))
  for n in chosen:
    if not 1 <= n <= len(blocks):
      parser.error(f"block {n} does not exist: README.md has {len(blocks)} Python blocks")
  if args.list:
    for n, code in enumerate(blocks, 1):
      first = next((x for x in code.splitlines() if x and not x.startswith(("import", "from"))),
                   "")
      print(f"{n}: {first}")
    return 0
  results, failed = [], 0
  for n in chosen:
    print(f"block {n} of {len(blocks)} ...", flush=True)
    ok, seconds, tail = run_block(blocks[n - 1], args.timeout)
    failed += not ok
    print(f"  {'ok' if ok else 'FAILED'} in {seconds:.0f} s\n    " + tail.replace("\n", "\n    "))
    results.append({"block": n, "ok": ok, "seconds": round(seconds, 1), "output_tail": tail})
  out = ROOT / "experiments" / "results" / "readme_blocks.json"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(results, indent=1) + "\n")
  print(f"{len(chosen) - failed} of {len(chosen)} blocks ran; results in {out}")
  return 1 if failed else 0


if __name__ == "__main__":
  raise SystemExit(main())
