"""A loopback double of Google's OAuth token endpoint, the metadata server, Drive v3 and Sheets v4.

Followed wire contracts (field names, nesting and types as Google documents them):

* **Token endpoint** ``POST /token`` (form ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``
  and ``assertion``): the RS256 signature is checked against the registered service account's public
  key (with :attr:`GoogleDouble.clock_skew` seconds of leeway), ``aud`` must be this endpoint,
  ``exp - iat`` at most an hour, ``scope`` known scopes. Answers
  ``{"access_token", "expires_in", "token_type": "Bearer"}``; a refused grant is 400
  ``{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}``.
* **Metadata server** ``GET /computeMetadata/v1/instance/service-accounts/default/token`` with the
  ``Metadata-Flavor: Google`` header.
* **API auth.** Every Drive and Sheets call needs ``Authorization: Bearer <token>`` of a live token with
  a fitting scope: otherwise 401 ``UNAUTHENTICATED`` (``reason: authError``) or 403
  ``insufficientPermissions``.
* **Drive v3** ``files.list`` (``q`` with ``'<id>' in parents``, ``trashed = false``, ``mimeType``
  and ``modifiedTime`` comparisons; ``fields`` selects the returned fields; ``pageSize`` at most 1000;
  ``pageToken``/``nextPageToken``; shared-drive items only with ``includeItemsFromAllDrives`` and
  ``supportsAllDrives``), ``files.get`` (``alt=media`` downloads, 403 ``fileNotDownloadable`` for
  Google Docs types), ``revisions.get?alt=media`` and ``files.export`` (Google Sheets to CSV; over
  the 10 MB export limit 403 ``exportSizeLimitExceeded``, as Drive's "Export" reference says).
* **Visibility.** Items in a folder not shared with the account (``add_folder(shared=False)``) are
  left out of ``files.list``, which still answers 200 with an empty list, and ``files.get`` answers
  404 ``notFound``, exactly as for an id that does not exist.
* **Partial pages.** Drive may return fewer items than ``pageSize``, even none, with a
  ``nextPageToken`` (``files.list`` reference): :attr:`GoogleDouble.page_sizes` scripts the size of
  the next pages; :attr:`GoogleDouble.incomplete_search` sets ``incompleteSearch: true``.
* **Sheets v4** ``spreadsheets.values.get`` and ``spreadsheets.get`` (see
  :mod:`tests.doubles.google_sheets_model`).
* Error bodies ``{"error": {"code", "message", "status", "errors": [{"domain", "reason", "message"}]}}``;
  Sheets v4 (a gRPC-transcoded API) instead sends ``details`` with a ``google.rpc.ErrorInfo``
  (``reason``, ``domain``, ``metadata``): :func:`sheets_error`.
  Faults (429 with ``Retry-After``, a 500 then success, ...) are scripted with :meth:`ApiDouble.fail`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.doubles.google_sheets_model import RangeError, Spreadsheet
from tests.doubles.server import ApiDouble, Request, Response

#: Drive's export limit ("Exported content is limited to 10MB", files.export reference).
EXPORT_LIMIT_BYTES = 10 * 1024 * 1024
#: Scopes outside Google's namespace that the token endpoint grants too (OpenID Connect).
OPENID_SCOPES = {"openid", "email", "profile"}
_GOOGLE_SCOPE = re.compile(r"https://www\.googleapis\.com/auth/[a-z][a-z0-9._-]*")
DRIVE_SCOPES = {"https://www.googleapis.com/auth/drive", "https://www.googleapis.com/auth/drive.readonly"}
SHEETS_SCOPES = DRIVE_SCOPES | {"https://www.googleapis.com/auth/spreadsheets",
                                "https://www.googleapis.com/auth/spreadsheets.readonly"}
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FOLDER_MIME = "application/vnd.google-apps.folder"
SHEET_MIME = "application/vnd.google-apps.spreadsheet"
DEFAULT_FIELDS = {"kind", "id", "name", "mimeType"}
_CLAUSE = re.compile(
    r"^(?:'(?P<parent>[^']+)' in parents|trashed\s*=\s*(?P<trashed>true|false)"
    r"|mimeType\s*(?P<mop>!?=)\s*'(?P<mime>[^']+)'|modifiedTime\s*(?P<top>[<>]=?|=)\s*'(?P<time>[^']+)')$"
)
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def google_error(code: int, message: str, reason: str | None = None, domain: str = "global",
                 headers: dict[str, str] | None = None) -> Response:
    """A Google API error response (the shape every faulting test uses, too)."""
    error: dict[str, Any] = {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}
    if reason:
        error["errors"] = [{"message": message, "domain": domain, "reason": reason}]
    return Response(code, {"error": error}, dict(headers or {}))


def sheets_error(code: int, message: str, reason: str, domain: str = "googleapis.com",
                 metadata: dict[str, str] | None = None) -> Response:
    """A Sheets v4 error: ``status`` and a ``google.rpc.ErrorInfo`` in ``details``, no ``errors`` list."""
    info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": domain,
            "metadata": dict(metadata or {})}
    return Response(code, {"error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN"),
                                     "details": [info]}})


def _oauth_error(code: str, description: str) -> Response:
    return Response(400, {"error": code, "error_description": description})


@dataclass
class DriveFile:
    """One Drive item. ``revisions`` keeps every content version by revision id."""

    id: str
    name: str
    mime_type: str
    parents: list[str]
    modified: datetime
    content: bytes = b""
    revisions: dict[str, bytes] = field(default_factory=dict)
    head_revision: str | None = None
    trashed: bool = False
    drive_id: str | None = None
    version: int = 1
    #: True/False: shared with the account or not; None: as its parent folder (top level: shared).
    shared: bool | None = None

    def resource(self) -> dict[str, Any]:
        """The file as Drive v3 describes it (before ``fields`` selects from it)."""
        body: dict[str, Any] = {
            "kind": "drive#file", "id": self.id, "name": self.name, "mimeType": self.mime_type,
            "parents": list(self.parents), "trashed": self.trashed, "version": str(self.version),
            "modifiedTime": self.modified.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if not self.mime_type.startswith("application/vnd.google-apps."):
            body.update(size=str(len(self.content)), md5Checksum=hashlib.md5(self.content).hexdigest(),
                        headRevisionId=self.head_revision)
        if self.drive_id:
            body["driveId"] = self.drive_id
        return body


class GoogleDouble(ApiDouble):
    """Google's token endpoint, metadata server, Drive and Sheets for the registered service accounts."""

    def __init__(self) -> None:
        super().__init__()
        self.public_keys: dict[str, Any] = {}
        self.tokens: dict[str, set[str]] = {}
        #: Every token ever issued, live or not (the secret-leak tests search for them).
        self.issued: list[str] = []
        self.token_lifetime = 3599
        #: Seconds of clock difference tolerated in ``iat``/``exp`` (tests' fake clocks run a little ahead).
        self.clock_skew = 300
        self.files: dict[str, DriveFile] = {}
        self.spreadsheets: dict[str, Spreadsheet] = {}
        self.subjects: list[str | None] = []
        #: Sizes of the next files.list pages (Drive may answer short or empty pages); then ``pageSize``.
        self.page_sizes: list[int] = []
        #: files.list answers ``incompleteSearch: true`` (Drive could not search every corpus).
        self.incomplete_search = False
        self.unshared_books: set[str] = set()
        self._ids = itertools.count(1)

    # -- credentials -----------------------------------------------------------------------------

    def register_account(self, client_email: str, public_key: Any) -> None:
        self.public_keys[client_email] = public_key

    def expire_tokens(self) -> None:
        """Every issued token becomes invalid (the next API call gets 401)."""
        with self.lock:
            self.tokens.clear()

    def issue_token(self, scopes: set[str]) -> str:
        token = f"ya29.double-{secrets.token_urlsafe(24)}"
        with self.lock:
            self.tokens[token] = set(scopes)
            self.issued.append(token)
        return token

    # -- Drive content ---------------------------------------------------------------------------

    def add_folder(self, name: str, parent: str = "root", drive_id: str | None = None,
                   folder_id: str | None = None, shared: bool | None = None) -> str:
        """A folder; ``folder_id`` fixes its id (an example DAG names one); ``shared=False``: not shared
        with the service account, so neither it nor what it holds is visible."""
        folder = self._add(name, FOLDER_MIME, parent, b"", datetime(2024, 1, 1, tzinfo=UTC), drive_id, folder_id)
        self.files[folder].shared = shared
        return folder

    def visible(self, item: DriveFile) -> bool:
        """Whether the account sees the item: shared itself, or held by a folder it sees."""
        if item.shared is not None:
            return item.shared
        parents = [self.files[p] for p in item.parents if p in self.files]
        return not parents or any(self.visible(parent) for parent in parents)

    def add_file(self, name: str, parent: str, content: bytes, modified: datetime, mime_type: str = "text/csv",
                 drive_id: str | None = None) -> str:
        return self._add(name, mime_type, parent, content, modified, drive_id)

    def add_google_sheet(self, name: str, parent: str, csv_export: bytes, modified: datetime) -> str:
        """A native Google Sheet whose first sheet exports as ``csv_export``."""
        return self._add(name, SHEET_MIME, parent, csv_export, modified, None)

    def update_file(self, file_id: str, content: bytes, modified: datetime) -> None:
        """A new version: new content and revision, a later ``modifiedTime``, ``version`` + 1."""
        with self.lock:
            item = self.files[file_id]
            item.content, item.modified, item.version = content, modified, item.version + 1
            self._new_revision(item)

    def trash(self, file_id: str) -> None:
        with self.lock:
            self.files[file_id].trashed = True

    def _add(self, name: str, mime: str, parent: str, content: bytes, modified: datetime,
             drive_id: str | None, file_id: str | None = None) -> str:
        with self.lock:
            file_id = file_id or f"1{next(self._ids):04d}{secrets.token_hex(8)}"
            item = DriveFile(file_id, name, mime, [parent], modified, content, drive_id=drive_id)
            self._new_revision(item)
            self.files[file_id] = item
            return file_id

    def _new_revision(self, item: DriveFile) -> None:
        if not item.mime_type.startswith("application/vnd.google-apps."):
            item.head_revision = f"0B{secrets.token_hex(10)}"
            item.revisions[item.head_revision] = item.content

    # -- Sheets content --------------------------------------------------------------------------

    def add_spreadsheet(self, spreadsheet_id: str, title: str = "Sheet", time_zone: str = "Etc/GMT",
                        shared: bool = True) -> Spreadsheet:
        """A spreadsheet; ``shared=False``: it exists but is not shared with the account (Sheets answers 403
        ``PERMISSION_DENIED``, unlike Drive's 404)."""
        with self.lock:
            book = self.spreadsheets[spreadsheet_id] = Spreadsheet(spreadsheet_id, title, time_zone)
            if not shared:
                self.unshared_books.add(spreadsheet_id)
            return book

    # -- routing ---------------------------------------------------------------------------------

    def route(self, request: Request) -> Response:
        path = urllib.parse.unquote(request.path)
        if path == "/token" and request.method == "POST":
            return self._token(request)
        if path.startswith("/computeMetadata/"):
            return self._metadata_token(request, path)
        if path.startswith("/drive/v3/"):
            return self._authorized(request, DRIVE_SCOPES) or self._drive(request, path.removeprefix("/drive/v3"))
        if path.startswith("/v4/spreadsheets/"):
            return self._authorized(request, SHEETS_SCOPES) or self._sheets(request, path.removeprefix("/v4/"))
        return google_error(404, f"The requested URL {path} was not found on this server.", "notFound")

    # -- OAuth -----------------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        import jwt

        form = request.body if isinstance(request.body, dict) else {}
        if form.get("grant_type") != JWT_BEARER:
            return Response(400, {"error": "unsupported_grant_type",
                                  "error_description": f"Invalid grant_type: {form.get('grant_type', '')}"})
        assertion = form.get("assertion", "")
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token and in a reasonable "
                                                 "timeframe.")
        if issuer not in self.public_keys:
            return _oauth_error("invalid_grant", "Invalid grant: account not found")
        try:
            claims = jwt.decode(assertion, self.public_keys[issuer], algorithms=["RS256"], audience=self.url + "/token",
                                options={"require": ["iss", "aud", "iat", "exp", "scope"]}, leeway=self.clock_skew)
        except jwt.InvalidSignatureError:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        except jwt.PyJWTError as exc:
            return _oauth_error("invalid_grant", f"Invalid JWT: {exc}")
        return self._grant(claims)

    def _grant(self, claims: dict[str, Any]) -> Response:
        scopes = set(str(claims["scope"]).split())
        if claims["exp"] - claims["iat"] > 3600:
            return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)")
        if not scopes or any(not _known_scope(scope) for scope in scopes):
            return _oauth_error("invalid_scope", f"Invalid OAuth scope or ID token audience provided: {sorted(scopes)}")
        self.subjects.append(claims.get("sub"))
        token = self.issue_token(scopes)
        return Response(200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"})

    def _metadata_token(self, request: Request, path: str) -> Response:
        if request.headers.get("metadata-flavor") != "Google":
            return Response(403, None, {"Content-Type": "text/html"}, raw=b"Missing Metadata-Flavor:Google header.")
        if path != "/computeMetadata/v1/instance/service-accounts/default/token":
            return Response(404, None, {"Content-Type": "text/html"}, raw=b"Not Found")
        scopes = set((request.param("scopes") or "https://www.googleapis.com/auth/cloud-platform").split(","))
        token = self.issue_token(scopes)
        return Response(200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"})

    def _authorized(self, request: Request, accepted: set[str]) -> Response | None:
        header = request.headers.get("authorization", "")
        scopes = self.tokens.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        if scopes is None:
            response = google_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access "
                                         "token, login cookie or other valid authentication credential.", "authError")
            response.body["error"]["errors"][0].update(location="Authorization", locationType="header")
            response.headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
            return response
        if not scopes & accepted:
            return google_error(403, "Request had insufficient authentication scopes.", "insufficientPermissions")
        return None

    # -- Drive -----------------------------------------------------------------------------------

    def _drive(self, request: Request, path: str) -> Response:
        parts = path.strip("/").split("/")
        if parts == ["files"]:
            return self._list(request)
        item = self.files.get(parts[1]) if len(parts) >= 2 and parts[0] == "files" else None
        # files.get hides shared-drive items without supportsAllDrives; revisions.get and export take no such flag.
        hidden = item is not None and item.drive_id and len(parts) == 2 and request.param("supportsAllDrives") != "true"
        if item is None or hidden or not self.visible(item):
            file_id = parts[1] if len(parts) > 1 else ""
            return google_error(404, f"File not found: {file_id}.", "notFound")
        if len(parts) == 2:
            return self._get(request, item)
        if parts[2:] == ["export"]:
            return self._export(request, item)
        if len(parts) == 4 and parts[2] == "revisions":
            return self._revision(request, item, parts[3])
        return google_error(404, "Not Found", "notFound")

    def _list(self, request: Request) -> Response:
        q = request.param("q") or ""
        try:
            matches = _matcher(q, request.param("includeItemsFromAllDrives") == "true"
                               and request.param("supportsAllDrives") == "true")
            size = int(request.param("pageSize") or 100)
        except ValueError:
            return google_error(400, "Invalid Value", "invalid", domain="global")
        if not 1 <= size <= 1000:
            return google_error(400, f"Invalid value '{size}'. Values must be within the range: [1, 1000]", "invalid")
        items = [f for f in self.files.values() if matches(f) and self.visible(f)]
        offset = _page_offset(request.param("pageToken"), q)
        if offset is None:
            return google_error(400, "Invalid Value", "invalid")
        with self.lock:
            size = self.page_sizes.pop(0) if self.page_sizes else size
        selected, rest = _select_fields(request.param("fields"))
        body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": self.incomplete_search,
                                "files": [_pick(f.resource(), selected) for f in items[offset : offset + size]]}
        if offset + size < len(items):
            body["nextPageToken"] = _page_token(offset + size, q)
        return Response(200, {k: v for k, v in body.items() if not rest or k in rest or k == "files"})

    def _get(self, request: Request, item: DriveFile) -> Response:
        if request.param("alt") != "media":
            selected, _ = _select_fields(request.param("fields"), top_level=True)
            return Response(200, _pick(item.resource(), selected))
        if item.mime_type.startswith("application/vnd.google-apps."):
            return google_error(403, "Only files with binary content can be downloaded. Use Export with Docs "
                                     "Editors files.", "fileNotDownloadable")
        return Response(200, None, {"Content-Type": item.mime_type}, raw=item.content)

    def _revision(self, request: Request, item: DriveFile, revision: str) -> Response:
        content = item.revisions.get(revision)
        if content is None:
            return google_error(404, f"Revision not found: {revision}.", "notFound")
        if request.param("alt") != "media":
            return Response(200, {"kind": "drive#revision", "id": revision, "mimeType": item.mime_type})
        return Response(200, None, {"Content-Type": item.mime_type}, raw=content)

    def _export(self, request: Request, item: DriveFile) -> Response:
        if item.mime_type != SHEET_MIME:
            return google_error(403, "Export only supports Docs Editors files.", "fileNotExportable")
        if request.param("mimeType") != "text/csv":
            return google_error(400, "The requested conversion is not supported.", "badRequest")
        if len(item.content) > EXPORT_LIMIT_BYTES:
            return google_error(403, "This file is too large to be exported.", "exportSizeLimitExceeded")
        return Response(200, None, {"Content-Type": "text/csv"}, raw=item.content)

    # -- Sheets ----------------------------------------------------------------------------------

    def _sheets(self, request: Request, path: str) -> Response:
        book_id, _, rest = path.removeprefix("spreadsheets/").partition("/")
        book = self.spreadsheets.get(book_id)
        if book is None:
            return google_error(404, "Requested entity was not found.")
        if book_id in self.unshared_books:
            return google_error(403, "The caller does not have permission")
        try:
            if not rest:
                fields = request.param("fields") or ""
                with_data = "data" in fields or request.param("includeGridData") == "true"
                return Response(200, book.metadata(request.params.get("ranges", []), not fields or "merges" in fields,
                                                   with_data))
            if rest.startswith("values/"):
                return self._values(request, book, rest.removeprefix("values/"))
        except RangeError as exc:
            return google_error(400, str(exc))
        return google_error(404, "Not Found")

    def _values(self, request: Request, book: Spreadsheet, a1: str) -> Response:
        value_render = request.param("valueRenderOption", "FORMATTED_VALUE")
        date_render = request.param("dateTimeRenderOption", "SERIAL_NUMBER")
        if value_render not in ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"):
            return google_error(400, f"Invalid value at 'value_render_option' ({value_render})")
        if date_render not in ("SERIAL_NUMBER", "FORMATTED_STRING"):
            return google_error(400, f"Invalid value at 'date_time_render_option' ({date_render})")
        if request.param("majorDimension", "ROWS") != "ROWS":
            return google_error(400, "only ROWS is modelled by the double")
        return Response(200, book.values(a1, value_render, date_render))


def _known_scope(scope: str) -> bool:
    """A scope the token endpoint grants: any of Google's API scopes (``cloud-platform``, ``drive.file``,
    ...) or an OpenID one; which APIs a token may call is checked per API (:meth:`_authorized`)."""
    return scope in OPENID_SCOPES or _GOOGLE_SCOPE.fullmatch(scope) is not None


# --- q, fields and page tokens ------------------------------------------------------------------


def _matcher(q: str, all_drives: bool) -> Any:
    """A predicate for the clauses of ``q`` joined by ``and`` (the subset the sources use)."""
    tests = []
    for clause in (c.strip() for c in re.split(r"\s+and\s+", q.strip()) if c.strip()):
        match = _CLAUSE.match(clause)
        if match is None:
            raise ValueError(clause)
        tests.append(_clause_test(match))

    def matches(item: DriveFile) -> bool:
        if item.drive_id and not all_drives:
            return False
        return all(test(item) for test in tests)

    return matches


def _clause_test(match: re.Match[str]) -> Any:
    if match["parent"]:
        return lambda f: match["parent"] in f.parents
    if match["trashed"]:
        return lambda f: f.trashed == (match["trashed"] == "true")
    if match["mime"]:
        return lambda f: (f.mime_type == match["mime"]) == (match["mop"] == "=")
    moment = datetime.fromisoformat(match["time"].replace("Z", "+00:00"))
    compare = {">": lambda a: a > moment, ">=": lambda a: a >= moment, "<": lambda a: a < moment,
               "<=": lambda a: a <= moment, "=": lambda a: a == moment}[match["top"]]
    return lambda f: compare(f.modified)


def _select_fields(spec: str | None, top_level: bool = False) -> tuple[set[str], set[str]]:
    """``nextPageToken,files(id,name)`` -> ({file fields}, {top-level fields}); default file fields."""
    if not spec:
        return set(DEFAULT_FIELDS), set()
    if top_level:
        return {f.strip() for f in spec.split(",")}, set()
    inner = re.search(r"files\(([^)]*)\)", spec)
    top = {part.strip() for part in re.sub(r"files\([^)]*\)", "files", spec).split(",")}
    return ({f.strip() for f in inner[1].split(",")} if inner else set(DEFAULT_FIELDS)), top


def _pick(resource: dict[str, Any], selected: set[str]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key in selected or "*" in selected}


def _page_token(offset: int, q: str) -> str:
    # A nonce: every page has its own token, an empty page's too (as Drive's opaque tokens).
    raw = json.dumps({"o": offset, "q": hashlib.sha1(q.encode()).hexdigest()[:8], "n": secrets.token_hex(4)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _page_offset(token: str | None, q: str) -> int | None:
    """The offset a page token stands for; None when it is not one of ours or belongs to another query."""
    if not token:
        return 0
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        return None
    if state.get("q") != hashlib.sha1(q.encode()).hexdigest()[:8]:
        return None
    return int(state["o"])


def make_service_account_key(token_uri: str, client_email: str = "ingest@dativo-test.iam.gserviceaccount.com"
                             ) -> tuple[dict[str, Any], Any]:
    """A throwaway service-account key file (as parsed JSON) and its public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    info = {
        "type": "service_account", "project_id": "dativo-test", "private_key_id": secrets.token_hex(20),
        "private_key": pem, "client_email": client_email, "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
    }
    return info, private.public_key()
