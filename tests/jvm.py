"""JVM options of the tests' Spark drivers: the session fixture's and those of the jobs the tests
start as processes (kept apart from tests/helpers.py so that conftest imports neither pyarrow nor
pyspark)."""

#: C1 only (no C2 compiler threads) and the serial collector. Test data are small, so the JVM's
#: time goes to class loading, planning and code generation rather than hot loops. Measured under
#: load: the session JVM's CPU time over tests/spark/test_sessionize.py fell from 114 s to 62 s,
#: and ``interest featurize`` on the integration store from 89 s to 57 s (whole process tree).
#: With C1 only the JVM reserves a 48 MB code cache (240 MB with tiered compilation); one session
#: serving the whole suite with the Delta jars loaded filled it ("Out of space in CodeCache") and
#: the JVM died mid-suite, so the cache gets the tiered default's room back (reserved, not used).
FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=256m"
