"""The measuring scripts under tools/ that the docs quote figures from, at tiny size."""

import json
import re
import shutil
import subprocess
import sys

from conftest import ROOT


def _probe(world, data):
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "one_step_probe.py"), str(world), "--data", str(data), "--episodes", "4", "--per-episode", "2", "--threads", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_one_step_probe_prints_ceiling_floor_and_the_network(tiny_world, tiny_dataset):
    proc = _probe(tiny_world, tiny_dataset)
    assert proc.returncode == 0, proc.stderr
    labels = ("tokenizer reconstruction", "copy the last real frame", "mean estimate", "stored sampler without", "stored sampler, as played")
    figures = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(.{44}) +(-?\d+\.\d+)", line)
        if m and m.group(1).startswith(labels):
            figures[m.group(1).strip()] = float(m.group(2))
    assert len(figures) == 5, proc.stdout
    assert all(0 < v < 100 for v in figures.values()), figures
    assert proc.stdout.startswith("8 windows of 4 last episodes"), proc.stdout
    assert "by the key held on the predicted tick" in proc.stdout


def test_one_step_probe_refuses_another_scenes_data(tiny_world, tiny_dataset, tmp_path):
    data = tmp_path / "other"
    shutil.copytree(tiny_dataset, data)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["scene"] = "maze"
    (data / "manifest.json").write_text(json.dumps(manifest))
    proc = _probe(tiny_world, data)
    assert proc.returncode != 0
    assert "holds the 'maze' scene, the world was trained on 'overworld'" in proc.stderr
    assert "Traceback" not in proc.stderr
