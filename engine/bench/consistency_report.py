"""The consistency report: the measurements of consistency.py summarised (the one JSON line) and
rendered as Markdown with their floors, ceilings and figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from engine.bench.machine import machine_line
from engine.bench.metrics import flicker_ratio
from engine.dynamics.sampler import SamplerConfig

if TYPE_CHECKING:
    from engine.bench.consistency import ConsistencyConfig


def summarise(report: dict, cfg: ConsistencyConfig) -> dict:
    tf, ar = report.get("teacher_forced", {}), report.get("autoregressive", {})
    loop, act, stab = report.get("loop_closure", {}), report.get("action_following", {}), report.get("stability", {})
    late = report.get("action_following_late", {})
    explore = stab.get("explore", {})
    return {
        "benchmark": "consistency",
        "scene": report["scene"],
        "psnr_tf": _r(tf.get("psnr")),
        "ssim_tf": _r(tf.get("ssim"), 4),
        "psnr_ar": {k: _r(v) for k, v in ar.get("psnr_mean", {}).items()},
        "ssim_ar": {k: _r(v, 4) for k, v in ar.get("ssim_mean", {}).items()},
        "first_below_threshold": ar.get("first_below_threshold_mean_curve"),
        "loop_self_psnr": _r(loop.get("self_psnr")),
        "loop_guarded_psnr": _r(loop.get("guarded_psnr")),
        "loop_gt_psnr": _r(loop.get("gt_psnr")),
        "action_agreement": _r(act.get("agreement"), 3),
        "motion_direction_agreement": _r(act.get("motion_direction_agreement"), 3),
        "branch_spread": _r(act.get("branch_difference_ratio"), 3),
        "branch_spread_late": _r(late.get("branch_difference_ratio"), 3),
        "motion_direction_agreement_late": _r(late.get("motion_direction_agreement"), 3),
        "motion_direction_agreement_any_move": _r(act.get("motion_direction_agreement_any_move"), 3),
        "motion_direction_agreement_late_any_move": _r(late.get("motion_direction_agreement_any_move"), 3),
        "sharpness_ratio_end": _r(stab.get("sharpness_ratio_end"), 3),
        "sharpness_ratio_explore_end": _r(explore.get("sharpness_ratio_end"), 3),
        "flicker_ratio_explore_end": _r(flicker_ratio(explore["flicker_world_end"], explore["flicker_real_end"]), 3) if explore else None,
        "psnr_tf_foreground": _r(tf.get("foreground_psnr")),
        "psnr_ar_foreground": {k: _r(v) for k, v in ar.get("foreground_psnr_mean", {}).items()},
        "plausibility_gap_ar": {k: _r(v["gap"]) for k, v in ar.get("plausibility", {}).items()},
        "plausibility_gap_explore": {k: _r(v["gap"]) for k, v in explore.get("plausibility", {}).items()},
        "plausibility_gap_ar_window": {k: _r(v["gap"]) for k, v in ar.get("plausibility_window", {}).items()},
        "psnr_no_keys": {k: _r(v) for k, v in report.get("no_keys", {}).get("psnr_mean", {}).items()},
        "flat_frame_share_ar": _r(ar.get("flat_frames", {}).get("world"), 3),
        "flat_frame_share_ar_real": _r(ar.get("flat_frames", {}).get("real"), 3),
        **{f"{k}_ar": _r(ar.get("reach", {}).get(k), 3) for k in ("precision", "coverage", "precision_real", "coverage_real")},
        "plausibility_foreground_gap_explore": {k: _r(v["foreground_gap"]) for k, v in explore.get("plausibility", {}).items()},
        "foreground_share_ratio_explore": {k: _r(v["foreground_share_ratio"], 3) for k, v in explore.get("plausibility", {}).items()},
        # foreground objects per frame, world and real (count_objects): at the exploration run's points and over all the
        # seeds' frames up to each point of the autoregressive run (reports from before the count have none)
        "objects_explore": {k: [_r(v["objects"]), _r(v["objects_real"])] for k, v in explore.get("plausibility", {}).items() if "objects" in v},
        "objects_ar_window": {k: [_r(v["objects"]), _r(v["objects_real"])] for k, v in ar.get("plausibility_window", {}).items() if "objects" in v},
        "objects_ratio_ar_window": {k: _r(v["objects_ratio"], 3) for k, v in ar.get("plausibility_window", {}).items() if v.get("objects_ratio") is not None},
        "frames": cfg.frames,
        "stability_frames": cfg.stability_frames,
        "seeds": cfg.seeds,
        **({"games_ended_ar": ar["games_ended"], "game_lengths_ar": ar["game_lengths"]} if ar.get("games_ended") else {}),
        **({"games_restarted_explore": explore["games_restarted"]} if explore.get("games_restarted") else {}),
        **({"fps": report["speed"]["fps"]} if "speed" in report else {}),
        "intervals": _intervals(ar, act, late, report.get("no_keys", {})),
    }


def _intervals(ar: dict, act: dict, late: dict, still: dict) -> dict:
    """95% bootstrap intervals (engine/bench/stats.py) under the summary's keys; reports before they were kept have none."""
    found = {
        "action_agreement": act.get("agreement_interval"),
        "motion_direction_agreement": act.get("motion_direction_interval"),
        "branch_spread": act.get("branch_difference_ratio_interval"),
        "branch_spread_late": late.get("branch_difference_ratio_interval"),
        "motion_direction_agreement_late": late.get("motion_direction_interval"),
        **{f"psnr_ar@{k}": v for k, v in ar.get("psnr_interval", {}).items()},
        **{f"plausibility_gap_ar_window@{k}": v.get("gap_interval") for k, v in ar.get("plausibility_window", {}).items()},
        "flat_frame_share_ar": ar.get("flat_frames", {}).get("interval"),
        **{f"psnr_no_keys@{k}": v for k, v in still.get("psnr_interval", {}).items()},
        "precision_ar": ar.get("reach", {}).get("precision_interval"),
        "coverage_ar": ar.get("reach", {}).get("coverage_interval"),
    }
    return {k: [round(float(x), 3) for x in v] for k, v in found.items() if v}


def _r(v, digits=2):
    return None if v is None else round(float(v), digits)


def markdown(report: dict, figures: list[str]) -> str:
    s = report["summary"]
    lines = [
        f"# Consistency of {Path(report['world']).name} against `{report['scene']}`\n",
        f"Machine: {machine_line(report['machine'])}. Backend: {report['backend']['backend']} on {report['backend']['device']}; "
        f"sampler {SamplerConfig.from_json(report['sampler']).describe()}. "
        f"Seeds {report['seeds'][0]}..{report['seeds'][-1]} ({len(report['seeds'])}, none used in training). "
        f"{report['seconds']} s.\n",
    ]
    for r in report.get("remeasured", []):  # parts run again later, same world, seeds and settings (tools/remeasure.py)
        lines.append(f"Re-measured on {r['date']} at commit {r['commit']}: {', '.join(r['sections'])}. Why: {r['why']}\n")
    tf = report.get("teacher_forced")
    if tf:
        lines += [
            "## Teacher-forced (context always real)\n",
            "| | PSNR dB | SSIM |",
            "|---|---|---|",
            f"| world, 1 step | **{tf['psnr']:.2f}** | **{tf['ssim']:.4f}** |",
            f"| floor: repeat the last frame | {tf['floor_repeat_last_psnr']:.2f} | {tf['floor_repeat_last_ssim']:.4f} |",
            f"| ceiling: tokenizer reconstruction | {tf['ceiling_tokenizer_psnr']:.2f} | {tf['ceiling_tokenizer_ssim']:.4f} |",
            "",
            f"Foreground only (pixels where the real frame differs from the background, the bank's per-pixel median): "
            f"world {_db(tf.get('foreground_psnr'))}, repeat-last floor {_db(tf.get('foreground_floor_repeat_last_psnr'))}.\n",
        ]
    ar = report.get("autoregressive")
    if ar:
        lines += [
            "## Autoregressive rollout\n",
            f"![autoregressive curves]({'autoregressive.png'})\n",
            "| step | PSNR mean | 95% interval of the mean (over seeds) | PSNR std | PSNR min | SSIM mean | floor: repeat first frame |",
            "|---|---|---|---|---|---|---|",
        ]
        for k in ar["psnr_mean"]:
            lines.append(
                f"| {k} | {_db(ar['psnr_mean'][k])} | {_span(ar.get('psnr_interval', {}).get(k), _db) or '–'} | {_db(ar['psnr_std'][k])} | {_db(ar['psnr_min'][k])} | "
                f"{_db(ar['ssim_mean'][k], 4)} | {_db(ar['floor_repeat_first_psnr'][k])} |"
            )
        if ar.get("games_ended"):
            lengths = [n for n in ar["game_lengths"] if n is not None]
            lines += [
                "",
                f"The real game ended in {ar['games_ended']} of {ar['rollouts']} rollouts, after {lengths} steps; "
                "each such rollout is scored up to its game's end, and the figures at a step average over the rollouts "
                f"still on then ({', '.join(f'{k}: {v}' for k, v in ar['rollouts_alive'].items())}).",
            ]
        if ar.get("plausibility"):
            lines += [
                "",
                "Foreground PSNR against the truth, and plausibility: nearest-real-frame PSNR of the world's frames against "
                "that of the real frames of all the steps shown (the ceiling), whole frame and foreground:\n",
                "| step | foreground PSNR | plausibility gap | whole frames world / ceiling | patches world / ceiling | foreground plausibility world / ceiling (gap) |",
                "|---|---|---|---|---|---|",
            ]
            for k, v in ar["plausibility"].items():
                lines.append(
                    f"| {k} | {_db(ar['foreground_psnr_mean'].get(k))} | **{_db(v['gap'])}** | {_db(v['frame_psnr'])} / {_db(v['frame_ceiling_psnr'])} | "
                    f"{_db(v['psnr'])} / {_db(v['ceiling_psnr'])} | "
                    f"{_db(v['foreground_psnr'])} / {_db(v['foreground_ceiling_psnr'])} ({_db(v['foreground_gap'])}) |"
                )
        for k, v in ar.get("plausibility_window", {}).items():
            lines += [
                "",
                f"Plausibility over the {v['window']} frames up to step {k} of all {len(v['per_rollout'])} rollouts (the ceiling: the real "
                f"frames of those windows; the interval resamples rollouts): gap **{_db(v['gap'])}** dB{_aside(v.get('gap_interval'), _db)}"
                + f"; whole frames {_db(v['frame_psnr'])} / {_db(v['frame_ceiling_psnr'])}, patches {_db(v['psnr'])} / {_db(v['ceiling_psnr'])}"
                + (f"; foreground objects per frame {_db(v['objects'])} (real {_db(v['objects_real'])})." if "objects" in v else "."),
            ]
        if ar.get("flat_frames"):
            f = ar["flat_frames"]
            lines += [
                "",
                f"Flat frames (a world melting into a flat wall): **{f['world']:.3f}**{_aside(f.get('interval'), _share)} of the world's "
                f"frames are flatter than the real run's flattest {f['quantile']:.0%} (8x8 block contrast under {f['threshold']:.1f}); "
                f"real {f['real']:.3f}.",
            ]
        if ar.get("reach"):
            g = ar["reach"]
            lines += [
                "",
                f"Precision and coverage against the bank ({g['k']}-NN balls of the bank's frames at 16x16, per rollout): "
                f"precision (its frames look like views of the game) **{g['precision']:.3f}**{_aside(g.get('precision_interval'), _share)}, "
                f"real {g['precision_real']:.3f}; coverage (the bank's views it came near) **{g['coverage']:.3f}**"
                f"{_aside(g.get('coverage_interval'), _share)}, real {g['coverage_real']:.3f}.",
            ]
        lines += [
            "",
            f"Tokenizer ceiling {ar['ceiling_tokenizer_psnr']:.2f} dB. First step below {ar['threshold']} dB: "
            f"{ar['first_below_threshold_mean_curve'] or 'never'} (mean curve); per seed {ar['first_below_threshold_per_seed']}.\n",
            "Real (top) and world (bottom) at the reported steps:\n",
            "![strip](strip.png)\n",
        ]
    still = report.get("no_keys")
    if still:
        lines += [
            "## No key held (the player lets go)\n",
            f"World and real game from the same start frames, no key held for {still['ticks']} ticks; "
            + ("the real game stood still throughout, so" if still["real_stood_still"] else "the real game moved on by itself;")
            + " PSNR of the world against it (95% interval over the seeds):\n",
            "| tick | " + " | ".join(still["psnr_mean"]) + " |",
            "|---|" + "---|" * len(still["psnr_mean"]),
            "| PSNR (dB) | " + " | ".join(f"{_db(v)} ({_span(still['psnr_interval'].get(k), _db) or '–'})" for k, v in still["psnr_mean"].items()) + " |\n",
        ]
    loop = report.get("loop_closure")
    if loop:
        lines.append("## Loop closure (out L ticks, back by the exact inverse)\n")
        if loop.get("available"):
            lines += [
                f"Context window: {loop['context']} frames.\n",
                "![loop closure](loop_closure.png)\n",
                "Guarded = return vs own departure, less any dB by which the world's far point is closer to its departure "
                "than the real far point is to the real one (a world that never leaves cannot close a loop for free). "
                "Excursion = far point vs departure PSNR (lower: went further).\n",
                "| L | scripts | guarded PSNR | return vs own departure PSNR | return vs real PSNR | departure vs real PSNR | excursion world / real |",
                "|---|---|---|---|---|---|---|",
            ]
            for L, v in loop["by_length"].items():
                lines.append(
                    f"| {L} | {v['scripts']} | {v['guarded_psnr']:.2f} | {v['self_psnr']:.2f} | {v['gt_psnr']:.2f} | {v['departure_gt_psnr']:.2f} "
                    f"| {v['excursion_psnr']:.2f} / {v['real_excursion_psnr']:.2f} |"
                )
            lines.append("")
        else:
            lines.append(f"Not measured: {loop['why']}.\n")
    act = report.get("action_following")
    if act:
        lines += [
            "## Action following (forked key sequences)\n",
            f"Each world branch is closer to its own real branch than to the other in **{_pct(act['agreement'])}**"
            f"{_aside(act.get('agreement_interval'), _pct)} of {act['compared_frames']} frames of {act['forks']} forks (chance: 50%). "
            f"The world's branches differ by {act['branch_difference_ratio']:.2f}x"
            f"{_aside(act.get('branch_difference_ratio_interval'), _x)} "
            f"as much as the real ones."
            + (
                f" Sideways motion goes the right way in {_pct(act.get('motion_direction_agreement'))}"
                f"{_aside(act.get('motion_direction_interval'), _pct)} of {act.get('motion_samples')} moves" + _any_move(act) + "."
                if act.get("motion_samples")
                else ""
            )
            + "\n",
        ]
    late = report.get("action_following_late")
    if late:
        lines.append(
            f"Late forks, after {late['warmup']} ticks of the world's own rollout (it has wandered from the real trajectory by "
            f"then, so agreement, {_pct(late['agreement'])}, means little): the branches differ by {late['branch_difference_ratio']:.2f}x"
            f"{_aside(late.get('branch_difference_ratio_interval'), _x)} as much as the real ones"
            + (
                f", and sideways motion goes the way the keys say in {_pct(late.get('motion_direction_agreement'))}"
                f"{_aside(late.get('motion_direction_interval'), _pct)} of {late.get('motion_samples')} moves" + _any_move(late)
                if late.get("motion_samples")
                else ""
            )
            + ".\n"
        )
    stab = report.get("stability")
    if stab:
        lines += [
            "## Stability (collapse detector)\n",
            "![stability](stability.png)\n",
            "| run | frames | sharpness world/real (start → end) | colour-histogram distance to real (start → end) | flicker world / real (end) |",
            "|---|---|---|---|---|",
        ]
        for name in ("noop", "explore"):
            v = stab[name]
            lines.append(
                f"| {name} | {v['frames']} | {v['sharpness_ratio_start']:.2f} → {v['sharpness_ratio_end']:.2f} | "
                f"{v['histogram_distance_start']:.3f} → {v['histogram_distance_end']:.3f} | {v['flicker_world_end']:.2f} / {v['flicker_real_end']:.2f} |"
            )
        restarted = {name: stab[name].get("games_restarted", 0) for name in ("noop", "explore")}
        if any(restarted.values()):
            lines += [
                "",
                f"The real game ended and started again (the world ran on) {restarted['noop']} times in the noop run "
                f"and {restarted['explore']} times in the explore run.",
            ]
        lines += [
            "",
            f"Plausibility over the {report['config']['plausibility_window']} frames up to each point (bank: {report['bank']['frames']} "
            f"real frames of {len(report['bank']['seeds'])} held-out episodes; the ceiling is that of the real frames of all the windows of the run; goal: within 2 dB of it):\n",
            "| run | frame | gap | whole frames: world / ceiling | 8x8 patches: world / ceiling | foreground patches: world / ceiling (gap) | foreground share world/real | objects per frame world / real |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in ("noop", "explore"):
            for k, v in stab[name].get("plausibility", {}).items():
                lines.append(
                    f"| {name} | {k} | **{_db(v['gap'])}** | {_db(v['frame_psnr'])} / {_db(v['frame_ceiling_psnr'])} | "
                    f"{_db(v['psnr'])} / {_db(v['ceiling_psnr'])} | "
                    f"{_db(v['foreground_psnr'])} / {_db(v['foreground_ceiling_psnr'])} ({_db(v['foreground_gap'])}) | "
                    f"{_db(v['foreground_share_ratio'])} | {_db(v.get('objects'))} / {_db(v.get('objects_real'))} |"
                )
        lines.append("")
    if "speed" in report:
        sp = report["speed"]
        where = f", {sp['machine']} ({sp['measured']})" if "machine" in sp else ""  # a speed run merged later names its machine
        lines += ["## Speed\n", f"{sp['backend']} on {sp['device']}{where}: **{sp['fps']:.1f} FPS**, p50 {sp['ms_p50']:.2f} ms, p99 {sp['ms_p99']:.2f} ms.\n"]
        for old in report.get("speed_earlier", []):
            lines.append(f"Earlier, on {old['machine']} ({old['measured']}): {old['fps']:.1f} FPS, p50 {old['ms_p50']:.2f} ms, p99 {old['ms_p99']:.2f} ms.\n")
    lines += ["## Summary\n", "```json", json.dumps(s, indent=1), "```", ""]
    return "\n".join(lines)


def _any_move(act: dict) -> str:
    """The direction figure before 2026-11-29 (every sideways move, whatever keys were held), where it was kept."""
    if act.get("motion_samples_any_move") is None:
        return " (every sideways move, whatever keys were held: measured before 2026-11-29)"
    return (
        f" under a sideways key (over every sideways move, whatever keys were held, the figure before 2026-11-29: "
        f"{_pct(act.get('motion_direction_agreement_any_move'))} of {act['motion_samples_any_move']})"
    )


def _db(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _share(v):
    return f"{v:.3f}"


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.0f}%"


def _x(v):
    return f"{v:.2f}x"


def _span(interval, fmt) -> str:
    """'lo-hi' of a 95% bootstrap interval (engine/bench/stats.py), 'lo to hi' where an end is negative, or '' for
    reports written before they were kept."""
    if not interval:
        return ""
    return f"{fmt(interval[0])}{' to ' if min(interval) < 0 else '-'}{fmt(interval[1])}"


def _aside(interval, fmt) -> str:
    span = _span(interval, fmt)
    return f" ({span}, 95% interval)" if span else ""
