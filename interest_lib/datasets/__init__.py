"""Public data sets turned into raw stores that ``interest ingest`` reads as they are."""
