"""Typed access to Table Storage: reads, paged queries, batched upserts, claims and ETag updates.

Tables are named ``settings.table_name_prefix + name`` (names from ``shared.names``) and are
created on first use, once per process. Entities are plain dicts (``Entity``); the ones this module
returns are the SDK's ``TableEntity`` (a dict) whose ETag ``etag_of`` reads.

azure.data.tables is imported inside methods so that importing this module stays cheap (cold
start); see tests/test_cold_start.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from shared.settings import Settings
from shared.storage.errors import StorageError, translated_errors

if TYPE_CHECKING:
    from azure.data.tables import TableClient, TableServiceClient

Entity = dict[str, Any]
WriteMode = Literal["merge", "replace"]
"""merge: properties not given keep their stored values; replace: the entity becomes exactly this."""

MAX_TRANSACTION_ENTITIES = 100
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
"""Table Storage's cap on one transaction's payload (Azurite enforces it too: 413)."""
DEFAULT_TRANSACTION_BUDGET = MAX_TRANSACTION_BYTES - 512 * 1024
"""Estimated bytes we put in one transaction: the cap less headroom for the multipart envelope."""
MAX_PAGE_SIZE = 1000

_SERVICE = "Table Storage"
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")


class ConcurrencyConflict(StorageError):
    """Someone else changed (or deleted) the entity since it was read: re-read and try again."""

    def __init__(self, table: str, partition_key: str, row_key: str, detail: str) -> None:
        super().__init__(
            f"table {table!r}, PartitionKey {partition_key!r}, RowKey {row_key!r}: {detail}"
        )
        self.table = table
        self.partition_key = partition_key
        self.row_key = row_key


@dataclass(frozen=True)
class BatchResult:
    """What ``upsert_many`` did: distinct entities written, transactions committed, requests sent.

    ``round_trips`` exceeds ``transactions`` only when the service rejected a transaction as too
    large (413) and it was split and sent again.
    """

    entities: int = 0
    transactions: int = 0
    round_trips: int = 0

    def __add__(self, other: BatchResult) -> BatchResult:
        return BatchResult(self.entities + other.entities, self.transactions + other.transactions,
                           self.round_trips + other.round_trips)


class BatchWriteError(StorageError):
    """A transaction failed: nothing in it was written; earlier transactions were (see ``written``).

    The message names the table, the partition and the failing entity (its position in the
    transaction and in the input, and its RowKey), never property values.
    """

    def __init__(self, message: str, *, table: str, partition_key: str, row_key: str | None,
                 input_index: int | None, storage_code: str | None, written: BatchResult) -> None:
        super().__init__(message)
        self.table = table
        self.partition_key = partition_key
        self.row_key = row_key
        self.input_index = input_index
        self.storage_code = storage_code
        """The Table service's error code (``error_code`` is the admin API's, from ``shared.errors``)."""
        self.written = written


@dataclass(frozen=True)
class Page:
    """One page of a query; pass ``continuation_token`` back to ``query`` to resume after it."""

    entities: list[Entity]
    continuation_token: str | None


# ---------------------------------------------------------------------------------------------
# Keys

_FORBIDDEN_KEY_CHARS = frozenset("/\\#?") | {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}
_KEY_ESCAPE = "~"
_ESCAPED = re.compile(r"~([0-9A-F]{2})")


def safe_key(value: str) -> str:
    """Encode a string for use as PartitionKey or RowKey, reversibly (``restore_key`` undoes it).

    Table keys may not contain / \\ # ? or control characters. Each of those, and the escape
    character ``~`` itself, becomes ``~XX`` (two upper-case hex digits); everything else is kept,
    so ordinary ids stay readable and keep their sort order.
    """
    if not any(ch in _FORBIDDEN_KEY_CHARS or ch == _KEY_ESCAPE for ch in value):
        return value
    return "".join(
        f"{_KEY_ESCAPE}{ord(ch):02X}" if ch in _FORBIDDEN_KEY_CHARS or ch == _KEY_ESCAPE else ch for ch in value
    )


def restore_key(value: str) -> str:
    """The original string of a key made by ``safe_key``."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), value)


def _check_key(name: str, value: object, table: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"table {table!r}: {name} must be a string, not {type(value).__name__}")
    bad = next((ch for ch in value if ch in _FORBIDDEN_KEY_CHARS), None)
    if bad is not None:
        raise ValueError(
            f"table {table!r}: {name} {value!r} contains {bad!r}, which Table Storage forbids in keys; "
            "encode it with shared.storage.tables.safe_key()"
        )
    return value


def _keys(entity: Mapping[str, Any], table: str) -> tuple[str, str]:
    if "PartitionKey" not in entity or "RowKey" not in entity:
        raise ValueError(f"table {table!r}: every entity needs a PartitionKey and a RowKey")
    return _check_key("PartitionKey", entity["PartitionKey"], table), _check_key("RowKey", entity["RowKey"], table)


def _has_etag(entity: Mapping[str, Any]) -> bool:
    metadata = getattr(entity, "metadata", None)
    return isinstance(metadata, Mapping) and isinstance(metadata.get("etag"), str)


def etag_of(entity: Mapping[str, Any]) -> str:
    """The ETag of an entity this store returned (from ``get``, ``query`` or ``list_partition``)."""
    metadata = getattr(entity, "metadata", None)
    etag = metadata.get("etag") if isinstance(metadata, Mapping) else None
    if not isinstance(etag, str):
        raise ValueError("this entity carries no ETag: pass one returned by TableStore.get/query/list_partition")
    return etag


# ---------------------------------------------------------------------------------------------
# Storable values

MAX_ENTITY_BYTES = 1024 * 1024
"""Table Storage's cap on one entity, counted as the service counts it (``entity_size``)."""
ENTITY_BUDGET = MAX_ENTITY_BYTES - 24 * 1024
"""What ``storable`` fits an entity into: the cap less headroom for the service's own properties."""
MAX_STRING_UNITS = 32 * 1024
"""Table Storage's cap on one string property: 64 KiB of UTF-16, i.e. 32K UTF-16 code units."""
STRING_CUT_UNITS = 32_000
"""Where ``storable`` cuts a longer string (a little under the cap)."""
_INT32 = range(-(2**31), 2**31)
_INT64 = range(-(2**63), 2**63)
_KEYS = ("PartitionKey", "RowKey")


def _units(text: str) -> int:
    """UTF-16 code units, as Table Storage measures strings."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _cut(text: str, units: int) -> str:
    """The longest prefix of ``text`` within ``units`` UTF-16 code units (no half surrogate pair)."""
    if len(text) <= units // 2 or _units(text) <= units:
        return text
    if text.isascii():
        return text[:units]
    out, used = [], 0
    for ch in text:
        need = 2 if ord(ch) > 0xFFFF else 1
        if used + need > units:
            break
        out.append(ch)
        used += need
    return "".join(out)


def _storable_value(value: Any) -> Any:
    """One value as Table Storage can hold it: big ints as Int64 (or text beyond 64 bits), long
    strings cut, dates outside the service's range and containers as text."""
    if isinstance(value, str):  # the common case first: this runs for every property written
        return value if len(value) <= STRING_CUT_UNITS // 2 else _cut(value, STRING_CUT_UNITS)
    if isinstance(value, bool) or value is None or isinstance(value, bytes | bytearray | float):
        return value
    if isinstance(value, int):
        if value in _INT32:
            return value
        if value in _INT64:
            from azure.data.tables import EdmType, EntityProperty

            return EntityProperty(value, EdmType.INT64)
        return str(value)
    if isinstance(value, datetime):
        return value if 1601 <= value.year <= 9999 else value.isoformat()  # Edm.DateTime starts in 1601
    if isinstance(value, tuple) and len(value) == 2:  # EntityProperty(value, edm_type)
        return value
    if isinstance(value, dict | list):
        return _storable_value(json.dumps(value, sort_keys=True, default=str))
    return value


def _property_size(name: str, value: Any) -> int:
    """Bytes of one property as the service counts them (8 + 2 per name character + the value)."""
    if isinstance(value, tuple) and len(value) == 2:
        value = value[0]
    if isinstance(value, str):
        size = 4 + 2 * _units(value)
    elif isinstance(value, bytes | bytearray):
        size = 4 + len(value)
    elif isinstance(value, bool):
        size = 1
    else:
        size = 16  # numbers, dates, GUIDs: at most 16
    return 8 + 2 * len(name) + size


def entity_size(entity: Mapping[str, Any]) -> int:
    """The entity's size as Table Storage counts it against its 1 MiB cap."""
    keys = sum(_units(str(entity.get(k, ""))) for k in _KEYS)
    return 4 + 2 * keys + sum(_property_size(n, v) for n, v in entity.items() if n not in _KEYS)


def storable(entity: Mapping[str, Any]) -> Entity:
    """A copy of ``entity`` that Table Storage accepts value by value and as a whole.

    Integers beyond 32 bits become Int64 (text beyond 64 bits), strings are cut to the 64 KiB
    property cap, dates before 1601 become text, and while the entity exceeds its budget the
    longest strings are cut further. Keys are left alone (``safe_key`` encodes them); binary
    values are never cut (a cut blob is garbage), so an oversized one is still refused by the
    service and the caller decides (the sync quarantines the record).
    """
    out: Entity = {name: value if name in _KEYS else _storable_value(value) for name, value in entity.items()}
    for _ in range(3):  # one pass fits; the others only absorb rounding
        excess = entity_size(out) - ENTITY_BUDGET
        if excess <= 0:
            break
        sizes = {n: _units(v) for n, v in out.items() if n not in _KEYS and isinstance(v, str) and v}
        if not sizes:
            break
        # Cut every string longer than a common cap, the highest cap that removes the excess:
        # all long values keep their beginning, none is emptied for the others.
        need, low, high = (excess + 1) // 2, 0, max(sizes.values())
        while low < high:
            cap = (low + high + 1) // 2
            if sum(max(0, u - cap) for u in sizes.values()) >= need:
                low = cap
            else:
                high = cap - 1
        for name, units in sizes.items():
            if units > low:
                out[name] = _cut(out[name], low)
    return out


def as_stored(written: Mapping[str, Any], etag: str, *, onto: Mapping[str, Any] | None = None) -> Entity:
    """The entity a write of ``written`` (already ``storable``) left, with its new ``etag``: what ``get`` would
    return, without the round trip. Only for a write whose result is known whole: a create, or a merge
    ``onto`` the entity as read at the ETag the write was conditional on.

    As the service does, a None value is not written (a merge keeps the old one), and a date without a
    time zone is UTC.
    """
    from azure.data.tables import TableEntity

    stored = TableEntity(onto or {})
    for name, value in plain(dict(written)).items():
        if value is None or (isinstance(value, tuple) and value[0] is None):
            continue
        stored[name] = value.replace(tzinfo=UTC) if isinstance(value, datetime) and value.tzinfo is None else value
    stored._metadata = {"etag": etag, "timestamp": None}
    return stored


def plain(entity: Entity) -> Entity:
    """The entity as it was written: Int64 values the SDK reads as ``EntityProperty`` become ints
    again (in place, so a ``TableEntity`` keeps its ETag)."""
    for name, value in entity.items():
        if isinstance(value, tuple) and len(value) == 2 and value[1] == "Edm.Int64":
            entity[name] = value[0]
    return entity


# ---------------------------------------------------------------------------------------------
# Transaction sizing

_ENTITY_OVERHEAD = 1024
"""Per operation in the multipart body: changeset boundary, request line, headers."""
_PROPERTY_OVERHEAD = 64
"""Per property: quotes, separators and an '@odata.type' annotation."""


def _value_size(value: Any) -> int:
    if isinstance(value, tuple) and len(value) == 2:  # EntityProperty(value, edm_type)
        return _value_size(value[0]) + _PROPERTY_OVERHEAD
    if isinstance(value, str):
        return len(json.dumps(value))  # as the SDK sends it: JSON with \\uXXXX escapes
    if isinstance(value, bytes | bytearray | memoryview):
        return 4 * math.ceil(len(value) / 3) + 2  # base64 in quotes
    return 64  # numbers, booleans, datetimes, GUIDs: all far shorter


def estimate_size(entity: Mapping[str, Any]) -> int:
    """A conservative estimate of the entity's bytes inside a transaction request."""
    keys = len(str(entity.get("PartitionKey", "")).encode()) + len(str(entity.get("RowKey", "")).encode())
    size = _ENTITY_OVERHEAD + 3 * keys  # the keys appear in the URL, percent-encoded (<= 3x)
    for name, value in entity.items():
        size += _PROPERTY_OVERHEAD + len(json.dumps(name)) + _value_size(value)
    return size


def _chunks(entities: list[tuple[int, Entity]], budget: int) -> Iterator[list[tuple[int, Entity]]]:
    """Split one partition's entities into transactions: <= 100 entities and <= budget bytes each."""
    chunk: list[tuple[int, Entity]] = []
    size = 0
    for item in entities:
        item_size = estimate_size(item[1])
        if chunk and (len(chunk) == MAX_TRANSACTION_ENTITIES or size + item_size > budget):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    if chunk:
        yield chunk


def _encode_token(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token, sort_keys=True).encode()).decode("ascii")


def _decode_token(token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        value = None
    if not isinstance(value, dict):
        raise ValueError("continuation_token is not one TableStore.query returned; pass Page.continuation_token")
    return value


# Tables created by this process, per account URL: creation is one round trip per table per process.
_created_tables: set[tuple[str, str]] = set()
_created_lock = threading.Lock()


class TableStore:
    """Table Storage operations for this app, on the account and table prefix in ``settings``.

    Thread-safe: one store may be shared by concurrent handlers.
    """

    def __init__(self, settings: Settings, *, service: TableServiceClient | None = None,
                 transaction_budget: int = DEFAULT_TRANSACTION_BUDGET) -> None:
        """``service`` overrides the client built from ``settings.storage``; ``transaction_budget``
        is the estimated-bytes limit per transaction (keep the default below the 4 MiB cap)."""
        if service is None:
            from shared.storage.clients import table_service

            service = table_service(settings.storage)
        self._service = service
        self._prefix = settings.table_name_prefix
        self._budget = transaction_budget
        self._clients: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    # --- tables ----------------------------------------------------------------------------

    def table_url(self, table: str) -> str:
        """Where ``table`` lives: the account's address and the table's name (a key for per-table caches)."""
        return f"{self._service.url.rstrip('/')}/{self.table_name(table)}"

    def table_name(self, table: str) -> str:
        """The stored name of a logical table (``shared.names``): the prefix, then the name."""
        name = self._prefix + table
        if not _TABLE_NAME.fullmatch(name):
            raise ValueError(
                f"table name {name!r} (prefix {self._prefix!r} + {table!r}) is not valid: Azure table names "
                "are 3-63 letters and digits, starting with a letter"
            )
        return name

    def table_client(self, table: str) -> TableClient:
        """The SDK client for a logical table (created on first use), for callers that need
        conditional batch operations, such as the sync's create-or-update-under-ETag writes."""
        return self._client(table)

    def _client(self, table: str) -> TableClient:
        client = self._clients.get(table)
        if client is not None:
            return client
        name = self.table_name(table)
        key = (self._service.url, name)
        with _created_lock:
            created = key in _created_tables
        if not created:
            with self._errors():
                self._service.create_table_if_not_exists(name)
            with _created_lock:
                _created_tables.add(key)
        client = self._service.get_table_client(name)
        with self._lock:
            self._clients[table] = client
        return client

    def _errors(self) -> AbstractContextManager[None]:
        return translated_errors(_SERVICE, self._service.url)

    # --- reads -----------------------------------------------------------------------------

    def get(self, table: str, partition: str, row: str, *, select: list[str] | None = None) -> Entity | None:
        """The entity, or None when there is none."""
        from azure.core.exceptions import ResourceNotFoundError

        _check_key("PartitionKey", partition, table)
        _check_key("RowKey", row, table)
        client = self._client(table)
        with self._errors():
            try:
                return plain(client.get_entity(partition, row, select=select))
            except ResourceNotFoundError:
                return None

    def query(self, table: str, filter: str | None = None, parameters: Mapping[str, Any] | None = None,
              select: list[str] | None = None, page_size: int = MAX_PAGE_SIZE, *,
              continuation_token: str | None = None) -> Iterator[Page]:
        """Pages of the entities matching an OData ``filter`` (None = all), each at most ``page_size``.

        Use ``@name`` placeholders in the filter with ``parameters`` rather than formatting values
        in. A page may be empty yet carry a continuation token; stop when the token is None.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}, not {page_size}")
        token = _decode_token(continuation_token)
        client = self._client(table)
        if filter:
            paged = client.query_entities(filter, parameters=dict(parameters or {}), select=select,
                                          results_per_page=page_size)
        else:  # Azurite rejects an empty $filter (Azurite issue 1573): list instead
            paged = client.list_entities(select=select, results_per_page=page_size)
        pages = paged.by_page(continuation_token=token)  # type: ignore[arg-type]  # the SDK's token is a dict
        while True:
            with self._errors():
                page = next(pages, None)
                if page is None:
                    return
                entities: list[Entity] = [plain(e) for e in page]
            next_token = _encode_token(pages.continuation_token)  # type: ignore[attr-defined]
            yield Page(entities, next_token)
            if next_token is None:
                return

    def list_partition(self, table: str, partition: str, *, select: list[str] | None = None) -> Iterator[Entity]:
        """Every entity in one partition, in RowKey order, fetched a page at a time."""
        _check_key("PartitionKey", partition, table)
        for page in self.query(table, "PartitionKey eq @pk", {"pk": partition}, select):
            yield from page.entities

    # --- writes ----------------------------------------------------------------------------

    def upsert(self, table: str, entity: Mapping[str, Any], mode: WriteMode = "merge") -> str:
        """Insert or update one entity unconditionally; returns its new ETag."""
        from azure.data.tables import UpdateMode

        _keys(entity, table)
        client = self._client(table)
        with self._errors():
            metadata = client.upsert_entity(storable(entity), mode=UpdateMode(mode))
        return str(metadata["etag"])

    def upsert_many(self, table: str, entities: Iterable[Mapping[str, Any]],
                    mode: WriteMode = "merge") -> BatchResult:
        """Insert or update many entities in as few transactions as the limits allow.

        Entities are grouped by PartitionKey; each transaction holds at most 100 entities and
        an estimated payload under the 4 MiB cap. An entity given twice is written once: merged
        (mode "merge") or last-wins (mode "replace"). Each transaction is atomic; transactions are
        not atomic with each other. Writes are unconditional: Azurite ignores If-Match inside
        transactions (Azurite issue 1233), so never rely on ETags there; use ``update_with_etag``.
        """
        from azure.data.tables import UpdateMode

        update_mode = UpdateMode(mode)
        unique: dict[tuple[str, str], tuple[int, Entity]] = {}
        for index, entity in enumerate(entities):
            try:
                key = _keys(entity, table)
            except ValueError as exc:
                raise ValueError(f"{exc} (entity at input position {index}); nothing was written") from None
            if key in unique and mode == "merge":
                first_index, earlier = unique[key]
                unique[key] = (first_index, {**earlier, **entity})
            elif key in unique:
                unique[key] = (unique[key][0], dict(entity))
            else:
                unique[key] = (index, dict(entity))
        unique = {key: (index, storable(entity)) for key, (index, entity) in unique.items()}
        partitions: dict[str, list[tuple[int, Entity]]] = {}
        for (partition, _row), item in unique.items():
            partitions.setdefault(partition, []).append(item)
        if not partitions:
            return BatchResult()
        client = self._client(table)
        result = BatchResult()
        for partition, items in partitions.items():
            for chunk in _chunks(items, self._budget):
                result += self._submit(client, table, partition, chunk, mode=update_mode, done=result)
        return result

    def _submit(self, client: TableClient, table: str, partition: str, chunk: list[tuple[int, Entity]], *,
                mode: Any, done: BatchResult) -> BatchResult:
        """One transaction; if the service says it is too large (413), halve it and try again."""
        from azure.core.exceptions import HttpResponseError
        from azure.data.tables import RequestTooLargeError, TableTransactionError

        operations = [("upsert", entity, {"mode": mode}) for _index, entity in chunk]
        try:
            with self._errors():
                client.submit_transaction(operations)  # type: ignore[arg-type]
        except RequestTooLargeError:
            if len(chunk) == 1:
                too_large = self._batch_error(table, partition, chunk, index=0, code="RequestBodyTooLarge", done=done)
                raise too_large from None
            half = len(chunk) // 2
            first = self._submit(client, table, partition, chunk[:half], mode=mode, done=done)
            second = self._submit(client, table, partition, chunk[half:], mode=mode, done=done + first)
            return first + second + BatchResult(round_trips=1)
        except TableTransactionError as exc:
            index = exc.index if 0 <= exc.index < len(chunk) else None
            raise self._batch_error(table, partition, chunk, index=index, code=_code(exc), done=done) from None
        except HttpResponseError as exc:
            raise self._batch_error(table, partition, chunk, index=None, code=_code(exc), done=done) from None
        return BatchResult(entities=len(chunk), transactions=1, round_trips=1)

    def _batch_error(self, table: str, partition: str, chunk: list[tuple[int, Entity]], *, index: int | None,
                     code: str | None, done: BatchResult) -> BatchWriteError:
        name = self.table_name(table)
        if index is None:
            row_key, input_index = None, None
            where = "the transaction failed"
        else:
            input_index, entity = chunk[index]
            row_key = entity["RowKey"]
            where = f"entity {index} of the transaction failed (RowKey {row_key!r}, input position {input_index})"
        message = (
            f"writing {len(chunk)} entities to table {name!r}, PartitionKey {partition!r}: {where} "
            f"with {code or 'an error'}; that transaction wrote nothing, {done.entities} entities in "
            f"{done.transactions} earlier transactions were written"
        )
        return BatchWriteError(message, table=name, partition_key=partition, row_key=row_key,
                               input_index=input_index, storage_code=code, written=done)

    def insert_once(self, table: str, entity: Mapping[str, Any]) -> bool:
        """Create the entity; False when one with its keys already exists (the claim-once primitive).

        Exactly one of any number of concurrent callers with the same keys gets True.
        """
        return self.create(table, entity) is not None

    def create(self, table: str, entity: Mapping[str, Any]) -> Entity | None:
        """``insert_once`` that returns the entity as stored, with its ETag (as ``get`` would), or None when
        one with its keys already exists: a caller that goes on to update it conditionally needs no read."""
        from azure.core.exceptions import ResourceExistsError

        _keys(entity, table)
        client = self._client(table)
        sent = storable(entity)
        with self._errors():
            try:
                metadata = client.create_entity(sent)
            except ResourceExistsError:
                return None
        return as_stored(sent, str(metadata["etag"]))

    def update_with_etag(self, table: str, entity: Mapping[str, Any], etag: str,
                         mode: WriteMode = "merge") -> str:
        """Update only if the stored entity still has ``etag`` (If-Match); returns the new ETag.

        Raises ConcurrencyConflict when it changed or was deleted since it was read.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        partition, row = _keys(entity, table)
        client = self._client(table)
        name = self.table_name(table)
        with self._errors():
            try:
                metadata = client.update_entity(storable(entity), mode=UpdateMode(mode), etag=etag,
                                                match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError:
                raise ConcurrencyConflict(name, partition, row, "changed since it was read (ETag mismatch); "
                                          "re-read it and apply the change again") from None
            except ResourceNotFoundError:
                raise ConcurrencyConflict(name, partition, row, "was deleted since it was read") from None
        return str(metadata["etag"])

    def update_with_retry(self, table: str, partition: str, row: str,
                          mutate: Callable[[Entity], Entity | None], attempts: int = 5, *,
                          read: Entity | None = None) -> Entity | None:
        """Read, apply ``mutate``, write back with If-Match; on a conflict re-read and retry.

        ``mutate`` gets a copy of the stored entity (only the keys when there is none, which is
        then created) and returns the entity to store (replacing the stored one) or None to leave
        it as it is. It may run several times, so it must not have side effects. Returns the
        entity as stored (with its new ETag when it was updated, so it can be passed back as
        ``read``), or None when there is none and ``mutate`` returned None. Raises
        ConcurrencyConflict after ``attempts`` conflicting writes.

        ``read``: the entity as last seen, with its ETag, tried first instead of a read. Only a
        write proves it current, so when ``mutate`` leaves it as it is, the entity is read after all.
        """
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        seen = read if read is not None and _has_etag(read) else None
        tries = attempts + (1 if seen is not None else 0)  # one more, for when what was remembered is stale
        for attempt in range(tries):
            current = seen if seen is not None else self.get(table, partition, row)
            base: Entity = dict(current) if current is not None else {"PartitionKey": partition, "RowKey": row}
            desired = mutate(dict(base))
            if desired is None and seen is not None:  # a decision on what may be stale: look again
                seen = None
                continue
            if desired is None:
                return base if current is not None else None
            desired = {**desired, "PartitionKey": partition, "RowKey": row}
            if current is None:
                if self.insert_once(table, desired):
                    return desired
            else:
                try:
                    etag = self.update_with_etag(table, desired, etag_of(current), mode="replace")
                    return as_stored(storable(desired), etag)
                except ConcurrencyConflict:
                    if seen is not None:  # only what was remembered was out of date: read, no back-off
                        seen = None
                        continue
            if attempt + 1 < tries:
                # Jittered backoff so that competing writers stop colliding; not a security use.
                time.sleep(random.uniform(0, min(0.01 * 2**attempt, 0.5)))  # noqa: S311
        raise ConcurrencyConflict(self.table_name(table), partition, row,
                                  f"still conflicting after {attempts} attempts: too many concurrent writers "
                                  "to one entity; retry later or spread the writes over more rows")

    def delete(self, table: str, partition: str, row: str, etag: str | None = None) -> None:
        """Delete the entity (nothing happens when there is none).

        With ``etag``, only if it is unchanged; otherwise ConcurrencyConflict.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError

        _check_key("PartitionKey", partition, table)
        _check_key("RowKey", row, table)
        client = self._client(table)
        condition = MatchConditions.IfNotModified if etag else MatchConditions.Unconditionally
        with self._errors():
            try:
                client.delete_entity(partition, row, etag=etag, match_condition=condition)
            except ResourceModifiedError:
                raise ConcurrencyConflict(self.table_name(table), partition, row,
                                          "changed since it was read (ETag mismatch); not deleted") from None


def _code(exc: Exception) -> str | None:
    code = getattr(exc, "error_code", None)
    return str(code.value if hasattr(code, "value") else code) if code else None
