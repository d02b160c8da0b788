"""`skyloop bench compare A B`: two consistency reports side by side, with how sure each difference is.

Two runs of `bench consistency` with the same settings ran the same seeds and forks, so B - A is resampled paired
over those units (engine/bench/stats.py). A difference whose interval holds 0 is within the noise of the
benchmark's own sampling and does not decide anything; this is the check to make before calling a recipe better.
Figures made of a single run (teacher-forced PSNR over 512 frames, loop closure, the stability run's end points: 2 rollouts)
are shown with their difference and no interval: what varies there is not kept unit by unit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from engine.bench.plausibility import gap_over
from engine.bench.stats import paired_mean_difference, paired_ratio_difference, paired_statistic_difference
from engine.errors import SkyloopError

SETTINGS = {  # the settings a section's units depend on: two reports are compared there only if these agree
    "autoregressive": ["seeds", "frames"],
    "action_following": ["forks", "fork_length", "warmup"],
    "action_following_late": ["forks", "fork_length", "late_warmup"],
}
ACTION_FIGURES = {  # name: (the section's pooled figure, its per-fork numerator and denominator), as action_following keeps them
    "agreement": ("agreement", "agree_right", "agree_frames"),
    "motion direction": ("motion_direction_agreement", "direction_right", "direction_moves"),
    "branch spread": ("branch_difference_ratio", "spread_world", "spread_real"),
}


def load_report(path) -> dict:
    """A consistency report from its folder or its report.json."""
    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    if not file.exists():
        raise SkyloopError(f"{path}: no consistency report there (expected a folder with report.json, as `bench consistency --out` writes)")
    try:
        report = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise SkyloopError(f"{file}: not a JSON report ({e})") from None
    if report.get("benchmark") != "consistency":
        raise SkyloopError(f"{file}: not a `bench consistency` report (benchmark: {report.get('benchmark')!r})")
    return report


def _verdict(interval) -> str:
    if not interval:
        return "no interval"
    if interval[0] > 0:
        return "**B higher**"
    if interval[1] < 0:
        return "**A higher**"
    return "within noise"


def _row(name, a, b, paired=None, digits=2) -> dict:
    diff = None if a is None or b is None else b - a
    if paired:
        diff = paired["difference"]
    return {
        "figure": name,
        "a": a,
        "b": b,
        "difference": diff,
        "interval": paired["interval"] if paired else None,
        "verdict": _verdict(paired["interval"]) if paired else "",
        "digits": digits,
    }


def compare_reports(a: dict, b: dict) -> dict:
    """Rows of figure, A, B, B - A and its paired 95% interval where the units were kept; notes on what was skipped."""
    if a.get("scene") != b.get("scene"):
        raise SkyloopError(f"the reports measure different scenes ({a.get('scene')} and {b.get('scene')}): nothing to compare")
    rows, notes = [], []
    same_seeds = a.get("seeds") == b.get("seeds")
    if not same_seeds:
        notes.append("the reports ran different seeds: differences are shown without intervals")

    def comparable(section) -> bool:
        if section not in a or section not in b:
            return False
        differ = [k for k in SETTINGS.get(section, []) if a["config"].get(k) != b["config"].get(k)]
        if differ:
            notes.append(f"{section}: the reports differ in {', '.join(differ)}, so it is not compared")
            return False
        return True

    if "teacher_forced" in a and "teacher_forced" in b:
        rows.append(_row("teacher-forced PSNR (dB)", a["teacher_forced"]["psnr"], b["teacher_forced"]["psnr"]))
    if comparable("autoregressive"):
        ar_a, ar_b = a["autoregressive"], b["autoregressive"]
        kept = "psnr_per_seed" in ar_a and "psnr_per_seed" in ar_b and same_seeds
        if not kept:
            notes.append("autoregressive: a report predates per-seed figures (re-run `--parts ar` for intervals)")
        for step in ar_a["psnr_mean"]:
            if step not in ar_b["psnr_mean"]:
                continue
            paired = paired_mean_difference(ar_a["psnr_per_seed"][step], ar_b["psnr_per_seed"][step]) if kept else None
            rows.append(_row(f"AR@{step} PSNR (dB)", ar_a["psnr_mean"][step], ar_b["psnr_mean"][step], paired))
        fa, fb = ar_a.get("flat_frames"), ar_b.get("flat_frames")
        if fa and fb:  # the same real frames, so the same threshold for both
            paired = paired_mean_difference(fa["per_seed"], fb["per_seed"]) if kept else None
            rows.append(_row(f"flat frames, share (real {fa['real']:.2f}; lower is better)", fa["world"], fb["world"], paired, digits=3))
        ra, rb = ar_a.get("reach"), ar_b.get("reach")
        for name in ("precision", "coverage") if ra and rb else ():
            paired = paired_mean_difference(ra["per_seed"][name], rb["per_seed"][name]) if kept else None
            rows.append(_row(f"{name} against the bank (real {ra[name + '_real']:.2f}; higher is better)", ra[name], rb[name], paired, digits=3))
        for step, pa in ar_a.get("plausibility_window", {}).items():
            pb = ar_b.get("plausibility_window", {}).get(step)
            if pb is None or pa.get("window") != pb.get("window"):
                continue
            # same seeds and keys: the same real frames, so the same ceiling for both; the rollouts are resampled paired
            ceiling = np.mean(pa["ceiling_per_rollout"], 0)
            paired = paired_statistic_difference(pa["per_rollout"], pb["per_rollout"], lambda w: gap_over(w, ceiling))
            name = f"plausibility gap, {pa['window']} frames up to AR step {step}, all rollouts (dB, lower is better)"
            rows.append(_row(name, pa["gap"], pb["gap"], paired if kept else None))
    if "no_keys" in a and "no_keys" in b and same_seeds and a["no_keys"]["ticks"] == b["no_keys"]["ticks"]:
        na, nb = a["no_keys"], b["no_keys"]
        for step in na["psnr_mean"]:
            paired = paired_mean_difference(na["psnr_per_seed"][step], nb["psnr_per_seed"][step])
            rows.append(_row(f"no key held, PSNR after {step} ticks (dB)", na["psnr_mean"][step], nb["psnr_mean"][step], paired))
    if "loop_closure" in a and "loop_closure" in b:
        rows.append(_row("loop closure, guarded (dB)", a["loop_closure"].get("guarded_psnr"), b["loop_closure"].get("guarded_psnr")))
    for section, label in (("action_following", ""), ("action_following_late", "late ")):
        if not comparable(section):
            continue
        act_a, act_b = a[section], b[section]
        kept = "per_fork" in act_a and "per_fork" in act_b and same_seeds
        if not kept:
            notes.append(f"{section}: a report predates per-fork figures (re-run `--parts action` for intervals)")
        for name, (key, num, den) in ACTION_FIGURES.items():
            if label and name == "agreement":
                continue  # late agreement means little (the world has wandered from the real run by then)
            paired = None
            if kept and num in act_a["per_fork"] and num in act_b["per_fork"]:
                fa, fb = act_a["per_fork"], act_b["per_fork"]
                paired = paired_ratio_difference(fa[num], fa[den], fb[num], fb[den])
            if act_a.get(key) is not None or act_b.get(key) is not None:
                rows.append(_row(f"{label}{name}", act_a.get(key), act_b.get(key), paired, digits=3))
    sa, sb = a.get("summary", {}), b.get("summary", {})
    for key, name in (("sharpness_ratio_explore_end", "sharpness at the end of the exploration run"),):
        if sa.get(key) is not None and sb.get(key) is not None:
            rows.append(_row(name, sa[key], sb[key], digits=3))
    ga, gb = sa.get("plausibility_gap_explore", {}), sb.get("plausibility_gap_explore", {})
    for step in ga:
        if step in gb:
            rows.append(_row(f"plausibility gap at frame {step} of the exploration run (dB, lower is better)", ga[step], gb[step]))
    fa, fb = (a.get("speed") or {}).get("fps"), (b.get("speed") or {}).get("fps")
    if fa and fb:
        rows.append(_row("speed (FPS; machine and hour differ between runs)", fa, fb, digits=1))
    if not rows:
        raise SkyloopError("the reports share no measured section to compare")
    return {"a": a.get("world"), "b": b.get("world"), "rows": rows, "notes": notes}


def _fmt(v, digits) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def markdown(result: dict) -> str:
    lines = [
        f"A: {result['a']}  \nB: {result['b']}\n",
        "Paired 95% bootstrap intervals of B - A over the seeds (AR) or forks (action) both runs shared; "
        "a difference whose interval holds 0 is within the benchmark's noise.\n",
        "| figure | A | B | B - A | 95% interval | |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        d = r["digits"]
        span = "–" if not r["interval"] else f"{r['interval'][0]:+.{d}f} to {r['interval'][1]:+.{d}f}"
        diff = "–" if r["difference"] is None else f"{r['difference']:+.{d}f}"
        lines.append(f"| {r['figure']} | {_fmt(r['a'], d)} | {_fmt(r['b'], d)} | {diff} | {span} | {r['verdict']} |")
    if result["notes"]:
        lines += [""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def bench_compare(a_path, b_path, out=None) -> dict:
    result = compare_reports(load_report(a_path), load_report(b_path))
    text = markdown(result)
    print(text)
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps(result, indent=1) + "\n")
        (out / "compare.md").write_text(text)
        print(f"comparison: {out / 'compare.md'}")
    return result
