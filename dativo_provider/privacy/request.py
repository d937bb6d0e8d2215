"""A data-subject request as the engine sees it: who, what, by when."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from dativo_provider.exceptions import ConfigError
from dativo_provider.privacy.identifiers import normalise_email, validated_emails, validated_ids

__all__ = ["DEFAULT_DEADLINE", "KINDS", "RequestKind", "SubjectRequest", "normalise_email"]

RequestKind = Literal["access", "portability", "erasure", "restriction", "lift_restriction"]
KINDS: tuple[str, ...] = ("access", "portability", "erasure", "restriction", "lift_restriction")
#: GDPR Art. 12(3): one month to answer; we count 30 days.
DEFAULT_DEADLINE = timedelta(days=30)


@dataclass(frozen=True)
class SubjectRequest:
    """One request about one data subject.

    :param subject_kind: the kind of subject (the ``dativoDataSubject`` value in contracts, e.g.
        ``customer``); it picks the identifier columns.
    :param subject_ids: values of the subject-identifier columns, as text (``"42"`` matches 42).
    :param emails: e-mail addresses of the subject; matched on e-mail columns after normalising.

    Identifiers follow :mod:`dativo_provider.privacy.identifiers`: e-mails are kept normalised, and an
    empty or whitespace-only id or e-mail is refused (it would match every anonymous row).

    :raises ConfigError: unknown kind, no identifier, or a blank (or, for e-mails, malformed) identifier;
        the message names the parameter and the request id.
    """

    request_id: str
    kind: RequestKind
    subject_kind: str
    subject_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    received_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    deadline: datetime | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"request {self.request_id!r}: kind is {self.kind!r}; expected one of {KINDS}")
        if isinstance(self.subject_ids, str) or isinstance(self.emails, str):
            raise ConfigError(f"request {self.request_id!r}: subject_ids and emails are lists, "
                              "not a single string")
        object.__setattr__(self, "subject_ids", validated_ids(self.subject_ids, request_id=self.request_id))
        object.__setattr__(self, "emails", validated_emails(self.emails, request_id=self.request_id))
        if not self.subject_ids and not self.emails:
            raise ConfigError(f"request {self.request_id!r}: give at least one subject id or e-mail")
        if self.deadline is None:
            object.__setattr__(self, "deadline", self.received_at + DEFAULT_DEADLINE)

    def to_dict(self) -> dict[str, Any]:
        """The request as JSON-ready data (identifiers included: keep it out of logs and XCom)."""
        return {
            "request_id": self.request_id,
            "kind": self.kind,
            "subject_kind": self.subject_kind,
            "subject_ids": list(self.subject_ids),
            "emails": list(self.emails),
            "received_at": self.received_at.isoformat(),
            "deadline": self.deadline.isoformat() if self.deadline else None,
        }
