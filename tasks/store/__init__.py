"""Store: the VectorStore protocol, the Chroma store, reconcile with the ledger, the store lock."""
