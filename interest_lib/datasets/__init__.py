"""Public real data sets: Complete Journey as a raw store that ``interest ingest`` reads as it is,
and Ta-Feng as an events frame for the event-level protocol."""
