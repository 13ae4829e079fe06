"""The link stage: person IDs → nodes → candidate pairs → scores → links → clusters, plus weak death
matches; creates the link tables of :mod:`pipelines.linking.schema` as relations of the session.

Run it after load (the extract tables and rule views exist) and before detect.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


from pipelines.engine import Engine, as_engine
from pipelines.linking import schema
from pipelines.linking.blocking import generate_candidates
from pipelines.linking.clusters import build_clusters
from pipelines.linking.deaths import match_deaths
from pipelines.linking.records import build_nodes, present_person_extracts, registry_present
from pipelines.linking.scoring import THRESHOLD, score_candidates


@dataclass(frozen=True)
class LinkRelations:
    """The names of the relations one linking run reads and writes, passed to each step
    explicitly (no step knows another's table names). Work relations carry ``prefix``; the
    outputs are the four link tables of :mod:`pipelines.linking.schema`."""

    prefix: str = "_lk"

    def work(self, step: str) -> str:
        return f"{self.prefix}_{step}"

    @property
    def nodes(self) -> str:
        return self.work("nodes")

    @property
    def names(self) -> str:
        return self.work("names")

    @property
    def multi_counts(self) -> str:
        return self.work("multi_counts")

    @property
    def candidates(self) -> str:
        return self.work("cand")

    @property
    def scored(self) -> str:
        return self.work("scored")

    @property
    def links(self) -> str:
        return self.work("links")

    @property
    def clusters(self) -> str:
        return self.work("clusters")

    @property
    def death_matches(self) -> str:
        return self.work("death_matches")

    def all(self) -> tuple[str, ...]:
        """Every work relation (dropped when linking ends)."""
        return (self.nodes, self.names, self.multi_counts, self.candidates, self.scored, self.links, self.clusters,
                self.death_matches)

    def outputs(self) -> dict[str, str]:
        """Link table -> the work relation it is published from."""
        return {schema.PERSON_LINKS: self.links, schema.PERSON_LINK_CANDIDATES: self.scored,
                schema.IDENTITY_CLUSTERS: self.clusters, schema.DEATH_MATCHES: self.death_matches}


@dataclass
class LinkResult:
    """What :func:`link_persons` did (counts and seconds per step), for the run manifest."""

    extracts: list[str] = field(default_factory=list)
    person_ids: int = 0
    candidate_pairs: int = 0
    pairs_scored: int = 0
    pairs_stored: int = 0
    links: int = 0
    clusters: int = 0
    ids_in_clusters: int = 0
    death_matches: int = 0
    death_ambiguous: int = 0
    blocks: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    mode: str = "full"             # full: every ID linked; incremental: the previous run's links updated
    incremental: dict[str, int | str] = field(default_factory=dict)  # what the incremental update touched
    state_bytes: int = 0           # size of the link state kept for the next run (derived/link_state/)

    @property
    def pairs_per_second(self) -> float:
        """Candidate pairs scored per second of scoring (features, similarity, weights)."""
        return self.pairs_scored / self.seconds["score"] if self.seconds.get("score") else 0.0

    def as_dict(self) -> dict:
        """JSON-friendly summary."""
        return asdict(self) | {"pairs_per_second": round(self.pairs_per_second)}


def link_persons(
    con: Engine,
    *,
    threshold: float = THRESHOLD,
    max_block_size: int = 1000,
    batch_rows: int = 1_000_000,
    work: LinkRelations = LinkRelations(),
    state_dir: Path | None = None,
) -> LinkResult:
    """Resolve person identities over every person-carrying extract relation of the session ``con``.

    Creates (or replaces) the relations ``person_links``, ``person_link_candidates``,
    ``identity_clusters`` and ``death_matches`` (see docs in :mod:`pipelines.linking`).
    ``threshold`` is the score a pair needs to be a high-confidence link; ``max_block_size``
    caps a (name key, birth date) block; ``batch_rows`` bounds the pairs scored at a time (on
    DuckDB; Spark batches by its own setting). Each step reads and writes the relations ``work`` names.
    With ``state_dir``, what incremental linking needs is written there as Parquet
    (:mod:`pipelines.linking.state`). Deterministic, and the same on every engine: same extracts, same tables.
    """
    con = as_engine(con)
    result = LinkResult()
    lap = Laps(result)
    try:
        extracts = present_person_extracts(con)
        result.extracts = extracts
        result.person_ids = build_nodes(con, extracts, names=work.names, nodes=work.nodes,
                                        multi_counts=work.multi_counts if state_dir else None)
        lap("nodes")
        result.blocks = generate_candidates(con, nodes=work.nodes, out=work.candidates, max_block_size=max_block_size)
        result.candidate_pairs = result.blocks["candidate_pairs"]
        lap("block")
        registry = registry_present(con, extracts)
        stats = score_candidates(con, nodes=work.nodes, names=work.names, candidates=work.candidates,
                                 out=work.scored, registry=registry, threshold=threshold, batch_rows=batch_rows)
        result.pairs_scored, result.pairs_stored = stats.pairs_scored, stats.pairs_stored
        lap("score")
        finish_link(con, result, lap, work=work, nodes=work.nodes, registry=registry)
        if state_dir is not None:
            from pipelines.linking.state import write_full_state

            write_full_state(con, Path(state_dir), work=work, registry=registry, threshold=threshold,
                             max_block_size=max_block_size)
            lap("state")
    finally:
        for name in work.all():
            con.drop(name)
    return result


class Laps:
    """Seconds per step into ``result.seconds``."""

    def __init__(self, result: LinkResult) -> None:
        self.result, self.clock = result, time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.result.seconds[step] = round(now - self.clock, 3)
        self.clock = now


def finish_link(con: Engine, result: LinkResult, lap: Laps, *, work: LinkRelations, nodes: str, registry: bool) -> None:
    """From the scored pairs (``work.scored``) over the whole set of IDs: links, clusters (over the
    relation ``nodes``, which holds at least every linked ID, node ids in ID order), weak death
    matches, and the four link tables."""
    q = con.dialect.quote_identifier
    con.materialize(work.links, f"SELECT * EXCLUDE (linked) FROM {q(work.scored)} WHERE linked")
    result.links = int(con.scalar(f"SELECT count(*) FROM {q(work.links)}"))
    result.clusters = build_clusters(con, nodes=nodes, links=work.links, out=work.clusters, registry=registry)
    result.ids_in_clusters = con.scalar(f"SELECT count(*) FROM {q(work.clusters)}")
    lap("cluster")
    result.death_matches, result.death_ambiguous = match_deaths(con, "death_records" in con.relations())
    lap("deaths")
    for table, source in work.outputs().items():
        con.materialize(table, f"SELECT * FROM {source} ORDER BY {schema.LINK_ORDER[table]}")
    lap("write")
