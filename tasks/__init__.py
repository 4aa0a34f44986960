"""One step each: partition, split, embed, store, retrieve, generate, report. Plain arguments in, plain values out."""
