"""The work, grouped by domain: ingest, store, embed, answer, report, dataset. Plain arguments in, plain values out."""
