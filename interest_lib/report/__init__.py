"""The run report: one self-contained HTML page per run (``interest report``, last step of ``interest run``).

Four small modules in the order the data flows: :mod:`.load` reads the tables at the run's pinned
versions (Spark-free, via the storage layer's snapshot reader), :mod:`.gather` turns rows into
small frames (pure pandas functions), :mod:`.charts` builds one Plotly figure per chart, and
:mod:`.page` assembles the HTML with plotly.js inlined once; :mod:`.job` ties them to the
configuration and the run record. Importing this package imports neither pyspark nor torch.
"""
