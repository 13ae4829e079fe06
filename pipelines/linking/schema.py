"""Names of the identity-resolution tables and the extracts they read.

Kept free of heavy imports: the rule engine imports it to know which derived tables a rule
may read (``requires``) besides the extract tables and views.
"""

from __future__ import annotations

# Tables written by :func:`pipelines.linking.link_persons` (each replaced on every run).
PERSON_LINKS = "person_links"                  # high-confidence links between two person IDs
PERSON_LINK_CANDIDATES = "person_link_candidates"  # scored candidate pairs worth an auditor's look
IDENTITY_CLUSTERS = "identity_clusters"        # member ID -> canonical ID, for IDs linked to another
DEATH_MATCHES = "death_matches"                # death records with an invalid/unknown ID, matched weakly

LINK_TABLES: tuple[str, ...] = (PERSON_LINKS, PERSON_LINK_CANDIDATES, IDENTITY_CLUSTERS, DEATH_MATCHES)

# The row order each table is written in (the same on every engine).
LINK_ORDER: dict[str, str] = {
    PERSON_LINKS: "person_id_a, person_id_b",
    PERSON_LINK_CANDIDATES: "person_id_a, person_id_b",
    IDENTITY_CLUSTERS: "canonical_id, rank",
    DEATH_MATCHES: "death_person_id, death_date, source, record_id, status",
}

# Extracts that carry people (person_id + name), read when present.
PERSON_EXTRACTS: tuple[str, ...] = ("pension_payments", "subsidy_payments", "deaths", "household", "prisoners")
