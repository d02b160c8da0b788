"""Action files and key scripts (numpy only; shared by data import, play and benchmarks).

An action is the multi-hot vector of the keys held in a tick. Files give one
row per tick: CSV (a `keys` column with names joined by '+', an `action`
column, or one 0/1 column per key), JSON lines (`{"keys": [...]}` or
`{"action": i}`; a `header` line is skipped, so action logs work), or plain
text (one line per tick, names joined by '+' or spaces, empty for none).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from engine.errors import SkyloopError
from engine.keys import KeySet


class ActionFileError(SkyloopError):
    """An action file that cannot be used; the message names the file and the line."""


def _names_from_cell(cell: str) -> list[str]:
    cell = cell.strip()
    if not cell:
        return []
    for sep in ("+", "|", ";", " "):
        if sep in cell:
            return [p for p in (s.strip() for s in cell.split(sep)) if p]
    return [cell]


def read_action_rows(path: Path) -> tuple[list, list[str] | None]:
    """Rows from a CSV or JSONL action file: each a list of names, a 0/1 list, or an int action.

    Returns (rows, key names the file declares or None).
    """
    text = path.read_text()
    if not text.strip():
        raise ActionFileError(f"{path}: action file is empty")
    rows: list = []
    declared: list[str] | None = None
    if path.suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise ActionFileError(f"{path}: CSV has no header row")
        fields = [f.strip() for f in reader.fieldnames]
        key_cols = [f for f in fields if f not in ("tick", "frame", "time", "keys", "action")]
        for i, row in enumerate(reader):
            row = {k.strip(): (v or "") for k, v in row.items() if k is not None}
            if "tick" in row and row["tick"].strip() and int(row["tick"]) != i:
                raise ActionFileError(f"{path}: row {i + 2} has tick {row['tick']}, expected {i} (one row per frame, in order)")
            if "keys" in fields:
                rows.append(_names_from_cell(row["keys"]))
            elif "action" in fields:
                rows.append(int(row["action"]))
            elif key_cols:
                rows.append([int(float(row[k] or 0)) for k in key_cols])
            else:
                raise ActionFileError(f"{path}: CSV needs a 'keys' column, an 'action' column or one column per key")
        if key_cols and "keys" not in fields and "action" not in fields:
            declared = key_cols
    elif path.suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ActionFileError(f"{path}: line {n} is not JSON ({exc})") from exc
            if "header" in obj:
                names = obj["header"].get("keys")
                if isinstance(names, dict):
                    names = names.get("names")
                declared = list(names) if names else declared
                continue
            if "keys" in obj:
                rows.append(list(obj["keys"]))
            elif "action" in obj:
                rows.append(int(obj["action"]))
            else:
                raise ActionFileError(f"{path}: line {n} has neither 'keys' nor 'action'")
    else:
        raise ActionFileError(f"{path}: unknown action file type (use .csv or .jsonl)")
    if not rows:
        raise ActionFileError(f"{path}: action file has no rows")
    return rows, declared


def rows_to_keys(rows: list, names: list[str], where: str) -> np.ndarray:
    out = np.zeros((len(rows), len(names)), np.uint8)
    for t, row in enumerate(rows):
        if isinstance(row, int):
            if not 0 <= row <= len(names):
                raise ActionFileError(f"{where}: row {t} has action {row}, but there are only {len(names)} keys (0 = none)")
            if row:
                out[t, row - 1] = 1
        elif row and all(isinstance(v, (int, bool)) for v in row):
            if len(row) != len(names):
                raise ActionFileError(f"{where}: row {t} has {len(row)} key values, expected {len(names)} ({names})")
            out[t] = np.asarray(row, np.uint8) != 0
        else:
            unknown = [v for v in row if v not in names]
            if unknown:
                raise ActionFileError(f"{where}: row {t} holds unknown key(s) {unknown}; keys are {names}")
            for v in row:
                out[t, names.index(v)] = 1
    return out


def read_key_script(path: str | Path, keyset: KeySet) -> list[list[str]]:
    """Key names per tick from a .txt, .csv or .jsonl file; unknown names are an error that names them."""
    path = Path(path)
    if not path.exists():
        raise ActionFileError(f"{path}: no such key file")
    if path.suffix in (".csv", ".jsonl"):
        rows, declared = read_action_rows(path)
        names = list(declared) if declared else list(keyset.names)
        keys = rows_to_keys(rows, names, str(path))
        unknown = sorted(set(names) - set(keyset.names))
        if unknown:
            raise ActionFileError(f"{path}: unknown key(s) {unknown}; this world's keys are {list(keyset.names)}")
        return [[names[i] for i in np.flatnonzero(row)] for row in keys]
    lines = path.read_text().splitlines()
    if not lines:
        raise ActionFileError(f"{path}: key file is empty")
    script, unknown = [], set()
    for line in lines:
        names = _names_from_cell(line.split("#", 1)[0])
        unknown |= {n for n in names if n not in keyset.names}
        script.append(names)
    if unknown:
        raise ActionFileError(f"{path}: unknown key(s) {sorted(unknown)}; this world's keys are {list(keyset.names)}")
    return script


class StickyRandom:
    """Holds a random key combination for a geometric number of ticks (mean `hold`)."""

    def __init__(self, keyset: KeySet, combos: list[tuple[str, ...]], rng: np.random.Generator, hold: float = 6.0):
        self.vectors = [keyset.vector(c) for c in combos]
        self.rng = rng
        self.p_change = 1.0 / hold
        self.current = self.vectors[rng.integers(len(self.vectors))]

    @classmethod
    def for_keyset(cls, keyset: KeySet, rng: np.random.Generator, hold: float = 6.0) -> "StickyRandom":
        """Nothing, each key alone, and each pair of keys that are not opposites (no turn_left + turn_right)."""
        names = keyset.names
        combos = [()] + [(n,) for n in names] + [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if keyset.opposite(a) != b]
        return cls(keyset, combos, rng, hold)

    def act(self, scene=None) -> np.ndarray:
        if self.rng.random() < self.p_change:
            self.current = self.vectors[self.rng.integers(len(self.vectors))]
        return self.current
