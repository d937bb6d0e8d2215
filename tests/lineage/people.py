"""A small contract with every kind of governance and rule the OpenMetadata mapping handles, and a real
Iceberg table of people under it (names and e-mail addresses the payload scans look for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from dativo_provider.contracts.loader import load_contract
from dativo_provider.contracts.model import Contract
from dativo_provider.iceberg.catalog import embedded_catalog
from dativo_provider.ingest.engine import run_ingest
from tests.memory_source import TableSource

CONTRACT = """\
apiVersion: v3.1.0
kind: DataContract
id: urn:test:people
version: 1.2.0
status: active
domain: sales
tags: [customer]
team: {{name: {team}}}
slaProperties:
  - property: retention
    value: 7
    unit: y
schema:
  - name: people
    physicalName: crm.people
    description: One row per person.
    properties:
      - name: person_id
        logicalType: integer
        physicalType: bigint
        required: true
        unique: true
        primaryKey: true
        classification: internal
        description: Identifies the data subject.
        customProperties:
          - {{property: dativoDataSubject, value: person}}
        quality:
          - name: person_id_unique
            metric: duplicateValues
            mustBe: 0
            customProperties: [{{property: dativoEngine, value: custom}}]
      - name: email
        logicalType: string
        physicalType: varchar(320)
        required: true
        classification: {email_class}
        description: Contact address.
        quality:
          - name: email_well_formed
            metric: invalidValues
            arguments: {{pattern: '^[^@ ]+@[^@ ]+[.][a-z]{{2,}}$'}}
            mustBe: 0
            customProperties: [{{property: dativoEngine, value: custom}}]
          - name: email_present
            metric: nullValues
            mustBe: 0
            customProperties: [{{property: dativoEngine, value: custom}}]
      - name: {name_column}
        logicalType: string
        classification: pii
      - name: country
        logicalType: string
        classification: public
        quality:
          - name: country_known
            metric: invalidValues
            arguments: {{validValues: [DE, FR, NL]}}
            mustBe: 0
            customProperties: [{{property: dativoEngine, value: custom}}]
          - name: few_missing_countries
            metric: nullValues
            mustBeLessThan: 3
            customProperties: [{{property: dativoEngine, value: custom}}]
    quality:
      - name: people_not_empty
        metric: rowCount
        mustBeGreaterThan: 0
        customProperties: [{{property: dativoEngine, value: custom}}]
"""

#: Personal data in the rows: none of it may reach OpenMetadata.
PII_VALUES = (
    "ada.lovelace@example.org",
    "grace.hopper(at)example.org",
    "Ada Lovelace",
    "Grace Hopper",
    "linus@example.org",
    "Linus Torvalds",
)


#: The data subjects' identifiers: distinctive enough that a scan cannot find them by chance in a UUID.
SUBJECT_IDS = (734001710101, 734001710202, 734001710303)


def people_contract(
    tmp_path: Path, *, team: str = "customer-data", email_class: str = "pii", name_column: str = "full_name"
) -> Contract:
    path = tmp_path / f"people-{team}-{email_class}-{name_column}.odcs.yaml"
    path.write_text(CONTRACT.format(team=team, email_class=email_class, name_column=name_column))
    return load_contract(path)


def people_table(tmp_path: Path) -> tuple[Any, str]:
    """crm.people in an embedded catalog: one malformed e-mail, one unknown country."""
    rows = pa.table(
        {
            "person_id": pa.array(SUBJECT_IDS, pa.int64()),
            "email": [PII_VALUES[0], PII_VALUES[1], PII_VALUES[4]],
            "full_name": [PII_VALUES[2], PII_VALUES[3], PII_VALUES[5]],
            "country": ["DE", "FR", "US"],
        }
    )
    catalog = embedded_catalog(tmp_path / "warehouse")
    run_ingest(TableSource(rows), catalog, "crm.people")
    return catalog, "crm.people"
