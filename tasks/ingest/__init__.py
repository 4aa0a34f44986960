"""Ingest: decode, partition and split documents, plan what changed, keep the ledger, index a batch."""
