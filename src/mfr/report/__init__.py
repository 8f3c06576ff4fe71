"""Reports: results tables, retrieval figures and the demo report."""
