"""Identity resolution (issue 4): one person behind several IDs, and death records with broken IDs.

``link_persons(con)`` reads every person-carrying extract in the warehouse (pension_payments,
subsidy_payments, deaths, household, prisoners) and writes four tables rules may read:

``person_links``           high-confidence links (score ≥ 0.99) between two canonical person IDs:
                           ``person_id_a < person_id_b``, ``score``, ``match_weight``, ``agreed_fields``
                           (id, name, birth_date, gender, region, household), per-field levels
                           (``id_level``, ``id_position``, ``name_level``, ``name_similarity``,
                           ``birth_level``, ``births_a/b``, ``gender_level``, ``registry_level``),
                           ``weights`` (bits per field) and ``blocks`` (which blocking keys found it).
``person_link_candidates`` the same columns plus ``linked`` for every scored pair worth a look
                           (linked, names not different, or score ≥ 0.01).
``identity_clusters``      one row per ID linked to another: ``person_id``, ``canonical_id``,
                           ``rank`` (1 = canonical), ``is_canonical``, ``cluster_size``, ``name``,
                           ``valid``, ``registered``, ``first_paid_period``, ``payment_count``,
                           ``rank_basis``, and its best link (``linked_to``, ``link_score``,
                           ``link_agreed_fields``, ``link_id_level``, ``link_name_level``).
                           An ID not listed is its own canonical ID.
``death_matches``          death records with an invalid or unknown ID whose simplified name and
                           birth date match pension payees: ``status`` matched (exactly one) or
                           ambiguous, ``matched_person_id``, candidates, levels and link score.

Modules: ``names`` (name keys once per distinct name), ``records`` (nodes), ``blocking``
(candidates), ``scoring`` (levels, weights, score), ``clusters`` (components, canonical ID),
``deaths`` (weak death matches), ``link`` (the stage).
"""

from pipelines.linking.link import LinkResult, link_persons
from pipelines.linking.schema import LINK_TABLES, PERSON_EXTRACTS

__all__ = ["link_persons", "LinkResult", "LINK_TABLES", "PERSON_EXTRACTS"]
