"""Link state: what a run keeps of its identity linking so that the next run can update the links
instead of linking every ID again (:mod:`pipelines.linking.incremental`).

Kept as Parquet in the run's ``derived/link_state/`` (DuckDB runs only):

``nodes``  one row per person ID: the node (what blocking and scoring compare) and the per-ID
           aggregates it came from (``name_min``/``name_max``/``house_min``/``house_max``,
           ``named_rows``: min/max/count merge with the aggregates of new rows);
``names``  the name keys and their integer ids (equality is all scoring asks of an id);
``multi``  per-name counts of the IDs seen under several names (the representative name);
``state.json``  the code fingerprint, parameters, registry flag and the person-bearing files the
           state was built from.

Each table is a *base* (written by a full link; an incremental run hard-links its predecessor's)
plus a *delta* (the rows an incremental update replaced or added since that base): the state is
the base without the delta's IDs, plus the delta. So a daily run writes only its small delta.
The person_link_candidates table of the run is the stored scored pairs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipelines.engine import Engine

STATE_DIR = "link_state"
META_FILE = "state.json"
FORMAT = 1
TABLES = ("nodes", "names", "multi")
KEYS = {"nodes": "person_id", "names": "name", "multi": "person_id"}
_SOURCES = sorted(Path(__file__).parent.glob("*.py")) + [Path(__file__).parent.parent / "warehouse_views.sql"]


def code_fingerprint() -> str:
    """Changes whenever the linking code (or the views it reads) changes: link state written by
    other code is never reused."""
    digest = hashlib.sha256(str(FORMAT).encode())
    for path in _SOURCES:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:24]


@dataclass(frozen=True)
class LinkState:
    """The link state kept in a run folder."""

    run_dir: Path
    meta: dict

    @property
    def dir(self) -> Path:
        return self.run_dir / "derived" / STATE_DIR

    def base(self, table: str) -> Path:
        return self.dir / f"{table}.parquet"

    def delta(self, table: str) -> Path:
        return self.dir / f"{table}_delta.parquet"

    @property
    def candidates(self) -> Path:
        return self.run_dir / "derived" / "person_link_candidates.parquet"

    @classmethod
    def read(cls, run_dir: Path) -> "LinkState | None":
        """The state of ``run_dir``, or None when it has none (or an incomplete one)."""
        try:
            meta = json.loads((Path(run_dir) / "derived" / STATE_DIR / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        state = cls(Path(run_dir), meta)
        files = [state.base(t) for t in TABLES] + [state.delta(t) for t in TABLES] + [state.candidates]
        return state if meta.get("format") == FORMAT and all(f.exists() for f in files) else None

    def max_node(self, engine: Engine) -> int:
        """The largest node id of the state (from state.json, else read from the nodes)."""
        if self.meta.get("max_node") is not None:
            return int(self.meta["max_node"])
        return int(engine.scalar(f"SELECT coalesce(max(node), 0) FROM ({self.relation_sql(engine, 'nodes')})"))

    def relation_sql(self, engine: Engine, table: str) -> str:
        """SELECT of the current rows of a state table: the base without the delta's keys, plus the delta."""
        read, key = engine.dialect.read_parquet, KEYS[table]
        base, delta = read([self.base(table)]), read([self.delta(table)])
        if table == "names":  # names are only ever added
            return f"SELECT * FROM {base} UNION ALL BY NAME SELECT * FROM {delta}"
        return (f"SELECT b.* FROM {base} AS b ANTI JOIN (SELECT DISTINCT {key} FROM {delta}) AS d USING ({key}) "
                f"UNION ALL BY NAME SELECT * FROM {delta}")


def meta(*, registry: bool, threshold: float, max_block_size: int, files: dict[str, list[list[str]]] | None = None,
         base_run: str | None = None, max_node: int | None = None) -> dict:
    """The state's description (``files`` is filled in by the link stage, which knows the snapshot;
    ``max_node``: the largest node id, new IDs are numbered after it)."""
    return {"format": FORMAT, "code": code_fingerprint(), "threshold": threshold, "max_block_size": max_block_size,
            "registry": bool(registry), "files": files or {}, "base_run": base_run, "max_node": max_node}


def write_meta(state_dir: Path, data: dict) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / f".{META_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, state_dir / META_FILE)


def write_full_state(con: Engine, state_dir: Path, *, work, registry: bool, threshold: float,
                     max_block_size: int) -> None:
    """Write the state of a full link (bases from the work relations ``work`` names; empty deltas)."""
    q = con.dialect.quote_identifier
    state_dir.mkdir(parents=True, exist_ok=True)
    sources = {"nodes": work.nodes, "names": work.names, "multi": work.multi_counts}
    for table, relation in sources.items():
        con.write_parquet(f"SELECT * FROM {q(relation)}", state_dir / f"{table}.parquet")
        con.write_parquet(f"SELECT * FROM {q(relation)} WHERE false", state_dir / f"{table}_delta.parquet")
    write_meta(state_dir, meta(registry=registry, threshold=threshold, max_block_size=max_block_size,
                               max_node=int(con.scalar(f"SELECT coalesce(max(node), 0) FROM {q(work.nodes)}"))))


def link_file(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (a copy where the file system refuses): link state
    and reused link tables cost no disk space per run."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def state_bytes(state_dir: Path) -> int:
    """Bytes the state files take (hard-linked bases counted once per run folder)."""
    return sum(p.stat().st_size for p in Path(state_dir).glob("*.parquet"))


@dataclass(frozen=True)
class Plan:
    """An incremental update: the state to start from and the added files per person extract
    (source_file, sha256)."""

    state: LinkState
    added: dict[str, list[tuple[str, str]]]


def plan_update(states: list[LinkState], files: dict[str, list[tuple[str, str]]], *, threshold: float,
                max_block_size: int, ordered_extracts: set[str] = frozenset()) -> Plan | str:
    """The incremental update from the first of ``states`` (newest first) whose person-bearing
    files are all among ``files`` (extract -> (source_file, sha256) of this run), built by this
    code with these parameters; else the reason none qualifies (of the newest state). In
    ``ordered_extracts`` (extracts with unique columns: a row's duplicate_id verdict depends on the
    rows before it) added files must sort after every earlier file."""
    if not states:
        return "no earlier run with link state"
    reasons = []
    for state in states:
        reason = _unfit(state, files, threshold, max_block_size, ordered_extracts)
        if reason is None:
            old = {e: {tuple(f) for f in fs} for e, fs in state.meta["files"].items()}
            added = {e: [f for f in fs if tuple(f) not in old.get(e, set())] for e, fs in files.items()}
            return Plan(state, {e: fs for e, fs in added.items() if fs})
        reasons.append(f"run {state.run_dir.name}: {reason}")
    return reasons[0]


def _unfit(state: LinkState, files: dict[str, list[tuple[str, str]]], threshold: float, max_block_size: int,
           ordered_extracts: set[str]) -> str | None:
    meta = state.meta
    if meta.get("code") != code_fingerprint():
        return "its link state was written by other linking code"
    if meta.get("threshold") != threshold or meta.get("max_block_size") != max_block_size:
        return "its link state has other linking parameters"
    for extract, old_files in sorted(meta.get("files", {}).items()):
        now = dict(files.get(extract, []))
        for source_file, sha256 in old_files:
            if source_file not in now:
                return f"{extract} file {source_file} was removed"
            if now[source_file] != sha256:
                return f"{extract} file {source_file} changed"
        if extract in ordered_extracts:
            last = max((f for f, _ in old_files), default="")
            early = [f for f, _ in files.get(extract, []) if [f, now[f]] not in old_files and f < last]
            if early:
                return f"{extract} file {early[0]} sorts before earlier files (duplicate_id verdicts may change)"
    return None
