"""The claims of scripts/doc_claims.py, one module per doc that quotes shipped results, and
`common` (the Claim, the shipped runs as faultbench reads them, number formats). A value
function two docs quote lives with the doc that explains it, and the other imports it."""
