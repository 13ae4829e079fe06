"""The link stage: person IDs → nodes → candidate pairs → scores → links → clusters, plus weak death
matches; writes the warehouse tables of :mod:`pipelines.linking.schema` in one transaction.

Run it after load (the extract tables and rule views exist) and before detect.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


from pipelines.engine import Engine, as_engine
from pipelines.linking import schema
from pipelines.linking.blocking import generate_candidates
from pipelines.linking.clusters import build_clusters
from pipelines.linking.deaths import match_deaths
from pipelines.linking.records import build_nodes, present_person_extracts, registry_present
from pipelines.linking.scoring import THRESHOLD, score_candidates

_TEMP = ("_lk_obs", "_lk_names", "_lk_nodes", "_lk_cand", "_lk_scored", "_lk_links",
         "_lk_components", "_lk_clusters", "_lk_death_matches", "_lk_pairs")


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
    batch_rows: int = 2_000_000,
) -> LinkResult:
    """Resolve person identities over every person-carrying extract in the warehouse ``con``.

    Creates (or replaces) ``person_links``, ``person_link_candidates``, ``identity_clusters`` and
    ``death_matches`` (see docs in :mod:`pipelines.linking`). ``threshold`` is the score a pair
    needs to be a high-confidence link; ``max_block_size`` caps a (name key, birth date) block;
    ``batch_rows`` bounds the pairs scored at a time. Deterministic: same warehouse, same tables.
    """
    con = as_engine(con)
    result = LinkResult()
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.seconds[step] = round(now - clock, 3)
        clock = now

    extracts = present_person_extracts(con)
    result.extracts = extracts
    result.person_ids = build_nodes(con, extracts)
    lap("nodes")
    result.blocks = generate_candidates(con, max_block_size)
    result.candidate_pairs = result.blocks["candidate_pairs"]
    lap("block")
    registry = registry_present(con, extracts)
    stats = score_candidates(con, registry, threshold, batch_rows)
    result.pairs_scored, result.pairs_stored, result.links = stats.pairs_scored, stats.pairs_stored, stats.links
    con.execute("CREATE OR REPLACE TEMP TABLE _lk_links AS SELECT * EXCLUDE (linked) FROM _lk_scored WHERE linked")
    lap("score")
    result.clusters = build_clusters(con, registry)
    result.ids_in_clusters = con.scalar("SELECT count(*) FROM _lk_clusters")
    lap("cluster")
    result.death_matches, result.death_ambiguous = match_deaths(con, "death_records" in con.relations())
    lap("deaths")
    _publish(con)
    lap("write")
    return result


def _publish(con: Engine) -> None:
    """Replace the four warehouse tables from the temp tables in one transaction, then drop temps."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE OR REPLACE TABLE {schema.PERSON_LINKS} AS SELECT * FROM _lk_links ORDER BY person_id_a, person_id_b")
        con.execute(f"CREATE OR REPLACE TABLE {schema.PERSON_LINK_CANDIDATES} AS SELECT * FROM _lk_scored "
                    "ORDER BY person_id_a, person_id_b")
        con.execute(f"CREATE OR REPLACE TABLE {schema.IDENTITY_CLUSTERS} AS SELECT * FROM _lk_clusters "
                    "ORDER BY canonical_id, rank")
        con.execute(f"CREATE OR REPLACE TABLE {schema.DEATH_MATCHES} AS SELECT * FROM _lk_death_matches")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    for name in _TEMP:
        con.execute(f"DROP TABLE IF EXISTS {name}")
