"""Connection-form helpers for Airflow 2.x, built from the tables in ``get_provider_info``.

Airflow >= 3.2 reads ``conn-fields`` and ``ui-field-behaviour`` from the provider info without
importing a hook; Airflow 2.x asks the hook's classmethods, which call these functions. The UI
libraries are imported only when Airflow asks for a form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def form_widgets(fields: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """WTForms fields for a ``conn-fields`` table (``format: password`` → a password field)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import PasswordField, StringField

    widgets: dict[str, Any] = {}
    for name, spec in fields.items():
        secret = spec["schema"].get("format") == "password"
        field_class = PasswordField if secret else StringField
        widget = BS3PasswordFieldWidget() if secret else BS3TextFieldWidget()
        label = lazy_gettext(spec["label"])
        widgets[name] = field_class(label, widget=widget, description=spec["description"])
    return widgets


def field_behaviour(table: Mapping[str, Any]) -> dict[str, Any]:
    """A ``ui-field-behaviour`` table in the shape Airflow 2.x's ``get_ui_field_behaviour`` returns."""
    return {
        "hidden_fields": list(table["hidden-fields"]),
        "relabeling": dict(table["relabeling"]),
        "placeholders": dict(table["placeholders"]),
    }
