"""The columns of each Stripe object this package knows, by the rule in :mod:`dativo_provider.sources.stripe`.

Each entry is ``"field:kind"`` (kind defaults to ``string``); kinds are those of
:mod:`dativo_provider.sources.records`. Fields an API version does not return arrive as null;
fields not listed here are not read (add them with the spec's ``extra_fields``). Objects Stripe
deletes (customers, draft invoices) have ``deleted``: true on a deleted object (``{"id", "object",
"deleted"}``), null otherwise. ``client_secret``
of payment intents is left out on purpose: Stripe treats it as a credential.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dativo_provider.sources.records import WHOLE_RECORD, Column

#: The version sent when the connection pins none: the last before ``basil``, whose shapes the column
#: lists below are written for (an account's own default may be anything, so it is never relied on).
DEFAULT_API_VERSION = "2025-02-24.acacia"
#: ``2025-03-31.basil`` moved or removed fields this map reads (Stripe's changelog for that release).
BASIL = "2025-03-31"

_OBJECTS: dict[str, str] = {
    "customers": """
        id object address:json balance:int created:unix currency default_source:ref delinquent:bool
        description discount:json email invoice_prefix invoice_settings:json livemode:bool metadata:json name
        next_invoice_sequence:int phone preferred_locales:json shipping:json tax_exempt test_clock:ref deleted:bool
    """,
    "charges": """
        id object amount:int amount_captured:int amount_refunded:int application:ref application_fee:ref
        application_fee_amount:int balance_transaction:ref billing_details:json
        calculated_statement_descriptor captured:bool created:unix currency customer:ref description
        disputed:bool
        failure_balance_transaction:ref failure_code failure_message fraud_details:json invoice:ref
        livemode:bool metadata:json on_behalf_of:ref outcome:json paid:bool payment_intent:ref payment_method
        payment_method_details:json receipt_email receipt_number receipt_url refunded:bool refunds:json
        review:ref shipping:json source_transfer:ref statement_descriptor statement_descriptor_suffix status
        transfer_data:json transfer_group
    """,
    "invoices": """
        id object account_country account_name amount_due:int amount_paid:int amount_remaining:int
        amount_shipping:int application:ref attempt_count:int attempted:bool auto_advance:bool
        automatic_tax:json billing_reason collection_method created:unix currency customer:ref
        customer_address:json customer_email customer_name customer_phone customer_tax_exempt
        default_payment_method:ref description discounts:json due_date:unix effective_at:unix
        ending_balance:int footer hosted_invoice_url invoice_pdf last_finalization_error:json lines:json
        livemode:bool metadata:json next_payment_attempt:unix number on_behalf_of:ref parent:json paid:bool
        period_end:unix period_start:unix receipt_number starting_balance:int statement_descriptor status
        status_transitions:json subscription:ref subtotal:int subtotal_excluding_tax:int tax:int
        test_clock:ref total:int total_excluding_tax:int webhooks_delivered_at:unix deleted:bool
    """,
    "subscriptions": """
        id object application:ref application_fee_percent:float automatic_tax:json
        billing_cycle_anchor:unix billing_thresholds:json cancel_at:unix cancel_at_period_end:bool
        canceled_at:unix cancellation_details:json collection_method created:unix currency
        current_period_end:unix current_period_start:unix customer:ref days_until_due:int
        default_payment_method:ref default_source:ref description discounts:json ended_at:unix items:json
        latest_invoice:ref livemode:bool metadata:json next_pending_invoice_item_invoice:unix
        on_behalf_of:ref pause_collection:json payment_settings:json pending_setup_intent:ref
        pending_update:json schedule:ref start_date:unix status test_clock:ref transfer_data:json
        trial_end:unix trial_settings:json trial_start:unix
    """,
    "payment_intents": """
        id object amount:int amount_capturable:int amount_details:json amount_received:int application:ref
        application_fee_amount:int automatic_payment_methods:json canceled_at:unix cancellation_reason
        capture_method confirmation_method created:unix currency customer:ref description invoice:ref
        last_payment_error:json latest_charge:ref livemode:bool metadata:json next_action:json
        on_behalf_of:ref payment_method:ref payment_method_options:json payment_method_types:json
        processing:json receipt_email review:ref setup_future_usage shipping:json statement_descriptor
        statement_descriptor_suffix status transfer_data:json transfer_group
    """,
    "balance_transactions": """
        id object amount:int available_on:unix created:unix currency description exchange_rate:float fee:int
        fee_details:json net:int reporting_category source:ref status type
    """,
    "events": """
        id object account api_version created:unix data:json livemode:bool pending_webhooks:int request:json
        type
    """,
}

#: Any other list endpoint: the common fields typed, the whole object as JSON in ``data``.
GENERIC = "id object created:unix livemode:bool metadata:json"

#: List parameters Stripe needs to return every object, not only the default selection.
DEFAULT_PARAMS: dict[str, dict[str, str]] = {"subscriptions": {"status": "all"}}

KNOWN_OBJECTS = tuple(sorted(_OBJECTS))

#: Objects that change after creation, and the events whose ``data.object`` is such an object (Stripe's
#: "Types of events"). Named one by one, not ``customer.*``: that would also bring every
#: ``customer.subscription.*``, ``customer.source.*`` ... event. ``invoice.upcoming`` is left out: its
#: object is a preview without an id. At most 20 per object (the ``types[]`` limit).
EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "charges": ("charge.captured", "charge.expired", "charge.failed", "charge.pending", "charge.refunded",
                "charge.succeeded", "charge.updated"),
    "customers": ("customer.created", "customer.updated", "customer.deleted"),
    "invoices": ("invoice.created", "invoice.deleted", "invoice.finalization_failed", "invoice.finalized",
                 "invoice.marked_uncollectible", "invoice.overdue", "invoice.paid", "invoice.payment_action_required",
                 "invoice.payment_failed", "invoice.payment_succeeded", "invoice.sent", "invoice.updated",
                 "invoice.voided", "invoice.will_be_due"),
    "subscriptions": ("customer.subscription.created", "customer.subscription.deleted",
                      "customer.subscription.paused", "customer.subscription.pending_update_applied",
                      "customer.subscription.pending_update_expired", "customer.subscription.resumed",
                      "customer.subscription.trial_will_end", "customer.subscription.updated"),
    "payment_intents": ("payment_intent.amount_capturable_updated", "payment_intent.canceled",
                        "payment_intent.created", "payment_intent.partially_funded", "payment_intent.payment_failed",
                        "payment_intent.processing", "payment_intent.requires_action", "payment_intent.succeeded"),
}
#: Events after which the object no longer exists (a canceled subscription's ``...subscription.deleted``
#: is not one: the subscription stays, with status ``canceled``).
DELETED_EVENTS = frozenset({"customer.deleted", "invoice.deleted"})
#: The ``object`` value of each object's items, to skip an event whose ``data.object`` is another kind.
OBJECT_KIND = {"charges": "charge", "customers": "customer", "invoices": "invoice", "subscriptions": "subscription",
               "payment_intents": "payment_intent"}
#: Objects with a search endpoint (``/v1/<object>/search``; Stripe's "Search" page lists no others).
SEARCHABLE = frozenset({"charges", "customers", "invoices", "payment_intents", "prices", "products", "subscriptions"})


def _parse(fields: str) -> list[Column]:
    columns = []
    for entry in fields.split():
        name, _, kind = entry.partition(":")
        columns.append(Column(name, kind or "string"))
    return columns


#: basil+: fields read from where they moved (a key path) ...
_BASIL_MOVED: dict[str, dict[str, tuple[str, ...]]] = {
    "invoices": {"subscription": ("parent", "subscription_details", "subscription")},
}
#: ... fields now on each subscription item: read from the first item (one period per item) ...
_BASIL_FROM_FIRST_ITEM: dict[str, tuple[str, ...]] = {
    "subscriptions": ("current_period_start", "current_period_end"),
}
#: ... and fields removed without a same-meaning replacement, left out of the columns (why, for the
#: run's details: an older table keeps the column, null from then on).
_BASIL_REMOVED: dict[str, dict[str, str]] = {
    "invoices": {"paid": "removed in 2025-03-31.basil: use status = 'paid'"},
    "charges": {"invoice": "removed in 2025-03-31.basil: invoice_payments link invoices and payments"},
    "payment_intents": {"invoice": "removed in 2025-03-31.basil: invoice_payments link invoices and payments"},
}


def is_basil_or_later(api_version: str) -> bool:
    """True for ``2025-03-31.basil`` and later versions (they sort by their date prefix)."""
    return api_version[:10] >= BASIL


def same_shapes(version: str, other: str) -> bool:
    """True if the column map reads both versions alike: it tells versions apart only at ``basil``."""
    return is_basil_or_later(version) == is_basil_or_later(other)


def declared_columns(object_name: str, api_version: str = DEFAULT_API_VERSION) -> list[Column]:
    """The columns of a known object as ``api_version`` shapes it, or the generic ones plus ``data``
    (the whole object as JSON)."""
    if object_name not in _OBJECTS:
        return [*_parse(GENERIC), Column("data", "json", WHOLE_RECORD)]
    columns = _parse(_OBJECTS[object_name])
    if not is_basil_or_later(api_version):
        return columns
    moved, removed = _BASIL_MOVED.get(object_name, {}), _BASIL_REMOVED.get(object_name, {})
    return [Column(c.name, c.kind, moved.get(c.name, ())) for c in columns if c.name not in removed]


def schema_notes(object_name: str, api_version: str) -> dict[str, str]:
    """Columns this version no longer fills, and why."""
    return dict(_BASIL_REMOVED.get(object_name, {})) if is_basil_or_later(api_version) else {}


def record_adapter(object_name: str, api_version: str) -> Callable[[Mapping[str, Any]], Mapping[str, Any]] | None:
    """A function lifting fields that moved into a list (basil+ subscriptions), or None if none moved."""
    lifted = _BASIL_FROM_FIRST_ITEM.get(object_name) if is_basil_or_later(api_version) else None
    if not lifted:
        return None

    def from_first_item(record: Mapping[str, Any]) -> Mapping[str, Any]:
        items = record.get("items")
        data = items.get("data") if isinstance(items, Mapping) else None
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], Mapping) else {}
        return {**record, **{name: first.get(name) for name in lifted}}

    return from_first_item
