"""The dense ranking of only the chunks a question's readers may read: exactly what Chroma's `where` filter gives,
at about the cost of an unfiltered query.

Chroma 1.5.9 filters by metadata in SQLite before its vector search. At 100,000 chunks (384-d, 60 random queries,
`benchmarks/scale.py --readers` has the end-to-end figure) a top-20 query took 2.5 ms unfiltered, 53 ms with
`{"readers": {"$contains": "g1"}}` and 111 ms with the `$or` of three groups a question needs; reading the
candidates' metadata back to check them costs 26 ms for 400 results. The keyword index already holds every chunk's
readers as a numpy column, so: ask Chroma for the unfiltered top m (5.5 ms for 400), with m sized from the share of
chunks the readers may see, and keep the visible ones. When at least n of them are visible they are exactly the
filtered top n (every chunk past rank m is further away than all of them). When not (a neighbourhood of hidden
documents) m grows once, up to 2,000 (18 ms); after that (a reader who sees very little) the query is asked again
with the `where` filter, inside Chroma.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from tasks.store.base import VectorStore
from tasks.store.keyword import KeywordIndex

MIN_FETCH, MAX_FETCH = 100, 2000  # unfiltered candidates: 2.2 ms for 100, 18 ms for 2,000 at 100,000 chunks


def query_visible(
    store: VectorStore,
    index: KeywordIndex,
    vector: Sequence[float],
    n: int,
    sources: Collection[str] | None,
    groups: tuple[str, ...] | None,
) -> list[tuple[str, float]]:
    """The n nearest chunks that readers of `groups` may read (None: any chunk), best first, as the store's query
    with its readers filter would give them. A chunk the index does not hold yet counts as hidden on the fast path."""
    if groups is None:
        return store.query(vector, n, sources)
    mask = index.mask(groups)
    readable = int(mask.sum())
    share = readable / index.n if index.n else 0.0
    fetch = math.ceil(max(MIN_FETCH, 2 * n / share)) if share > 0 else MAX_FETCH + 1
    while fetch <= MAX_FETCH:
        got = store.query(vector, fetch, sources)
        seen = [hit for hit, ok in zip(got, index.visible([cid for cid, _ in got], mask)) if ok]
        # Enough; or every chunk there is was looked at; or every chunk the readers may read was found.
        if len(seen) >= min(n, readable) or len(got) < fetch:
            return seen[:n]
        if fetch == MAX_FETCH:
            break
        # A neighbourhood of hidden chunks: once more, as far as the share seen so far says is needed.
        fetch = min(MAX_FETCH, max(2 * fetch, math.ceil(2 * fetch * n / max(1, len(seen)))))
    return store.query(vector, n, sources, groups)
