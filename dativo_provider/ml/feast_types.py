"""Iceberg column types as Feast types (feature view fields) and value types (entity join keys).

Feast is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dativo_provider.exceptions import ConfigError

if TYPE_CHECKING:
    from feast.types import FeastType
    from feast.value_type import ValueType
    from pyiceberg.types import IcebergType


def value_type_of(iceberg_type: IcebergType, where: str) -> ValueType:
    """The Feast ``ValueType`` of an entity key column of this Iceberg type."""
    from feast.types import from_feast_type

    return from_feast_type(feast_type_of(iceberg_type, where))


def value_type_of_iceberg_name(name: str) -> ValueType:
    """The Feast ``ValueType`` of an Iceberg type written as pyiceberg prints it (``long``, ``string``)."""
    from feast.value_type import ValueType

    try:
        return value_type_of(parse_iceberg_type(name), name)
    except ConfigError:
        return ValueType.UNKNOWN


def feast_type_of(iceberg_type: IcebergType, where: str) -> FeastType:
    """The Feast type of an Iceberg column type.

    :raises ConfigError: a type Feast cannot hold (maps, structs, nested lists, time); ``where`` names
        the column.
    """
    from feast import types as feast
    from pyiceberg import types as iceberg

    if isinstance(iceberg_type, iceberg.ListType):
        element = iceberg_type.element_type
        if isinstance(element, iceberg.ListType | iceberg.MapType | iceberg.StructType):
            raise ConfigError(f"{where}: a list of {element} has no Feast type; flatten it")
        return feast.Array(_primitive(element, where))
    return _primitive(iceberg_type, where)


def _primitive(iceberg_type: IcebergType, where: str) -> Any:
    from feast import types as feast
    from pyiceberg import types as iceberg

    table: list[tuple[type, Any]] = [
        (iceberg.BooleanType, feast.Bool), (iceberg.IntegerType, feast.Int32),
        (iceberg.LongType, feast.Int64), (iceberg.FloatType, feast.Float32),
        (iceberg.DoubleType, feast.Float64),
        (iceberg.DecimalType, feast.Decimal), (iceberg.StringType, feast.String),
        (iceberg.UUIDType, feast.Uuid),
        (iceberg.BinaryType, feast.Bytes), (iceberg.FixedType, feast.Bytes),
        (iceberg.TimestampType, feast.UnixTimestamp), (iceberg.TimestamptzType, feast.UnixTimestamp),
        (iceberg.DateType, feast.UnixTimestamp)]
    for kind, feast_type in table:
        if isinstance(iceberg_type, kind):
            return feast_type
    raise ConfigError(f"{where}: Iceberg type {iceberg_type} has no Feast type; cast it in a feature "
                      "transform")


def parse_iceberg_type(name: str) -> IcebergType:
    """An Iceberg primitive type from its name as pyiceberg prints it (``long``, ``decimal(10, 2)``)."""
    from pyiceberg.types import PrimitiveType

    try:
        parsed: IcebergType = PrimitiveType.model_validate(name)
    except ValueError:
        raise ConfigError(f"{name!r} is not an Iceberg primitive type") from None
    return parsed
