"""Report: metrics, grounding, run-to-run comparison, answer tables, report.html and the writer."""
