"""The outputs of the benchmark suite (``run_all.py``): the result JSON, its markdown table and
the scaling plot."""

from __future__ import annotations

import json
import pathlib
import re

import jax
from harness import fmt_num, fmt_time
from sections import AGENTS, SECTIONS


def device_slug() -> str:
  device = jax.devices()[0]
  if device.platform == "cpu":
    return "cpu"
  return re.sub(r"[^a-z0-9]+", "-", device.device_kind.lower()).strip("-") or device.platform


def headline(result: dict) -> dict:
  agents = result.get("sections", {}).get("agents", {}).get("agents", {})
  return {f"{name}_ratio_64_vs_1": info.get("ratio_64_vs_1")
          for name, info in agents.items() if isinstance(info, dict) and "config" in info}


def markdown(result: dict) -> str:
  m = result.get("matmul", {})
  lines = [f"# wmjax benchmarks: {result['device_kind']} ({result['platform']}), "
           f"{result['date']}", "",
           f"JAX {result['jax_version']}, {result['num_devices']} device(s), host CPU "
           f"{result.get('cpu') or '?'} with {result.get('cpu_count')} cores. Matmul rate "
           f"{m.get('flops_per_s', float('nan')) / 1e9:.1f} GFLOP/s (f32, {m.get('n')}^3): the "
           "floor of a figure is its counted matmul FLOPs over that rate, and *floor/time* is "
           "the fraction of it reached (1 would be matmul peak).", ""]
  if result.get("note"):
    lines += [f"Note: {result['note']}", ""]
  heads = {k: v for k, v in result.get("headline", {}).items() if v is not None}
  if heads:
    lines += ["Headline: time of 64 vmapped runs over the time of one run (64 would mean no "
              "gain from batching): "
              + ", ".join(f"{k.split('_')[0]} **{v:.1f}**" for k, v in heads.items()) + ".", ""]
  lines += ["N is the number of envs (envs), runs (agents) or devices (devices); envs planned "
            "at once (pets); start states, replayed sequences or envs (dreamer); positions "
            "searched at once or games (muzero). *(Kx N=1)*: time over the time at N = 1.", ""]
  lines += ["| section | case | N | time per call | throughput | compile s | floor/time |",
            "|---|---|---:|---:|---:|---:|---:|"]
  for row in result_rows(result):
    head = f"| {row['section']} | {row['case']} | {row['n']} |"
    if "seconds" not in row:
      why = row.get("skipped") or row.get("error", "")
      lines.append(f"{head} {'skipped (' + why + ')' if 'skipped' in row else 'error'} "
                   "| | | |")
      continue
    ratio = row.get("achieved_over_floor")
    extra = f" ({row['ratio_vs_1']:.1f}x N=1)" if "ratio_vs_1" in row and row["n"] != 1 else ""
    lines.append(f"{head} {fmt_time(row['seconds'])}{extra} | {fmt_num(row['throughput'])} "
                 f"{row['unit']} | {row['compile_s']:.1f} | "
                 f"{'' if ratio is None else f'{ratio:.3g}'} |")
  for name in SECTIONS:
    sec = result.get("sections", {}).get(name, {})
    for key, fmt in (("note", "{}"), ("skipped", "skipped ({})"), ("partial", "partial ({})"),
                     ("error", "error: {}")):
      if sec.get(key):
        lines += ["", f"{name}: " + fmt.format(sec[key])]
  agents = result.get("sections", {}).get("agents", {}).get("agents", {})
  if agents:
    lines += ["", "Agents (one training iteration per run):", ""]
    for name, info in agents.items():
      if "config" in info:
        lines.append(f"- {name} on {info['env']}: {info['note']}; "
                     f"{info['matmul_flops_per_run'] / 1e9:.3g} GFLOP of matmuls per run"
                     + ("" if info["flops_exact"] else " (lower bound)"))
      else:
        lines.append(f"- {name}: {info.get('skipped') or info.get('error')}")
  return "\n".join(lines) + "\n"


def result_rows(result: dict) -> list[dict]:
  return [row for name in SECTIONS
          for row in result.get("sections", {}).get(name, {}).get("rows", [])]


def plot_scaling(result: dict, path: pathlib.Path) -> bool:
  """Throughput against vmapped runs (one line per agent, its floor dashed) and against
  devices. Returns False (and says so) where matplotlib is not installed."""
  try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:
    print("matplotlib is not installed: no plot (redraw it elsewhere with --plot-only)")
    return False
  rate = result.get("matmul", {}).get("flops_per_s")
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 6))
  agents = result.get("sections", {}).get("agents", {})
  rate = agents.get("matmul_flops_per_s", rate)
  sizes: set[int] = set()
  for i, name in enumerate(AGENTS):
    rows = [r for r in agents.get("rows", []) if r["case"] == name and "seconds" in r]
    if not rows:
      continue
    color = f"C{i}"
    sizes |= {r["n"] for r in rows}
    ax1.plot([r["n"] for r in rows], [r["throughput"] for r in rows], "-", color=color,
             marker="os^Dvp"[i % 6], mfc="none", ms=7,
             label=f"{name} ({agents.get('agents', {}).get(name, {}).get('env', '')})")
    flops = agents.get("agents", {}).get(name, {}).get("matmul_flops_per_run")
    if rate and flops:
      ax1.axhline(rate / flops, color=color, ls="--", lw=1)
  ax1.set(xscale="log", yscale="log", xlabel="vmapped runs (seeds) N",
          ylabel="runs x training iterations / s",
          title="One training iteration of N runs in one program")
  if sizes:
    ax1.set_xticks(sorted(sizes), [str(n) for n in sorted(sizes)])
    ax1.minorticks_off()
  if rate:
    ax1.plot([], [], "k--", lw=1,
             label=f"floor: matmul FLOPs at {rate / 1e9:.0f} GFLOP/s (measured)")
  ax1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
  ax1.grid(True, which="major", alpha=0.3)
  dev = result.get("sections", {}).get("devices", {})
  rows = [r for r in dev.get("rows", []) if "seconds" in r]
  if rows:
    xs = [r["n"] for r in rows]
    ax2.plot(xs, [r["throughput"] for r in rows], "o-", color="C0",
             label=f"PETS, {dev.get('runs')} runs")
    base = next((r for r in rows if r["n"] == 1), None)
    if base:
      ax2.plot(xs, [base["throughput"] * d for d in xs], ":", color="grey",
               label="linear from 1 device")
    if all("floor_s" in r for r in rows):
      ax2.plot(xs, [r["runs"] / r["floor_s"] for r in rows], "--", color="C0", lw=1,
               label="floor: matmul FLOPs / (devices x rate)")
    title = "PETS runs sharded over devices"
    if dev.get("fake_devices"):
      title += f"\n(fake CPU devices: threads on the same {result.get('cpu_count')} cores)"
    ax2.set(xscale="log", yscale="log", xlabel="devices", ylabel="runs x iterations / s",
            title=title)
    ax2.set_xticks(xs, [str(x) for x in xs])
    ax2.minorticks_off()
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    ax2.grid(True, which="major", alpha=0.3)
  else:
    ax2.text(0.5, 0.5, "devices section not run", ha="center", va="center")
    ax2.set_axis_off()
  fig.suptitle(f"wmjax throughput on {result['device_kind']} ({result['date']})")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def write_outputs(result: dict, json_path: pathlib.Path, plot: bool = True,
                  write_json: bool = True) -> None:
  result["headline"] = headline(result)
  if write_json:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
  stem = json_path.with_suffix("")
  pathlib.Path(f"{stem}.md").write_text(markdown(result))
  if plot:
    plot_scaling(result, pathlib.Path(f"{stem}-scaling.png"))
