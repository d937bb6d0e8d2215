"""One name per concept across operators and sensors; old names work for one release, with a warning."""

from __future__ import annotations

import inspect
import warnings

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning

from dativo_provider.exceptions import ConfigError
from dativo_provider.operators.contracts import ContractCheckOperator, QuarantineReleaseOperator
from dativo_provider.operators.ingest import IcebergIngestOperator
from dativo_provider.operators.privacy import DsrEraseOperator, DsrRestrictOperator
from dativo_provider.sensors.contracts import ContractSlaSensor

#: deprecated name -> the name every operator uses now
RENAMED = {
    "dataset": "contract_dataset",
    "report_path": "quality_report_path",
    "restrictions_key_conn_id": "hash_key_conn_id",
    "registry_table": "restrictions_table",
}

BASE = {
    ContractCheckOperator: {"contract": "c.yaml", "table": "ns.t"},
    QuarantineReleaseOperator: {"contract": "c.yaml", "table": "ns.t"},
    ContractSlaSensor: {"contract": "c.yaml", "table": "ns.t"},
    IcebergIngestOperator: {"source": {"type": "files", "path": "/tmp/x.csv"}, "table": "ns.t"},
    DsrRestrictOperator: {},
    DsrEraseOperator: {"certificate_path": "/tmp/certificate.json"},
}

CASES = [
    (operator, old, new)
    for operator in BASE
    for old, new in RENAMED.items()
    if old in inspect.signature(operator.__init__).parameters
]


def test_every_deprecated_name_has_a_case():
    assert {(op.__name__, old) for op, old, _ in CASES} == {
        ("ContractCheckOperator", "dataset"),
        ("ContractCheckOperator", "report_path"),
        ("ContractCheckOperator", "restrictions_key_conn_id"),
        ("QuarantineReleaseOperator", "dataset"),
        ("ContractSlaSensor", "dataset"),
        ("IcebergIngestOperator", "restrictions_key_conn_id"),
        ("DsrRestrictOperator", "registry_table"),
    }


@pytest.mark.parametrize(("operator", "old", "new"), CASES, ids=lambda v: getattr(v, "__name__", v))
def test_the_old_name_still_works_with_a_warning(operator, old, new):
    with pytest.warns(AirflowProviderDeprecationWarning, match=f"'{old}' is deprecated.*use '{new}'"):
        task = operator(task_id="t", **BASE[operator], **{old: "value_x"})
    assert getattr(task, new) == "value_x"


@pytest.mark.parametrize(("operator", "old", "new"), CASES, ids=lambda v: getattr(v, "__name__", v))
def test_old_and_new_name_together_is_an_error(operator, old, new):
    with pytest.raises(ConfigError, match=f"give '{new}' only"):
        operator(task_id="t", **BASE[operator], **{old: "a", new: "b"})


@pytest.mark.parametrize("operator", list(BASE), ids=lambda v: v.__name__)
def test_the_new_names_warn_nothing(operator):
    params = inspect.signature(operator.__init__).parameters
    given = {new: "value_y" for new in RENAMED.values() if new in params}
    with warnings.catch_warnings():
        warnings.simplefilter("error", AirflowProviderDeprecationWarning)
        task = operator(task_id="t", **BASE.get(operator, {}), **given)
    for name, value in given.items():
        assert getattr(task, name) == value


def test_the_hash_key_connection_defaults_alike_everywhere():
    defaults = {
        ContractCheckOperator(task_id="a", **BASE[ContractCheckOperator]).hash_key_conn_id,
        IcebergIngestOperator(task_id="b", **BASE[IcebergIngestOperator]).hash_key_conn_id,
        DsrEraseOperator(task_id="c", **BASE[DsrEraseOperator]).hash_key_conn_id,
    }
    assert defaults == {"dativo_dsr_hash_key"}
