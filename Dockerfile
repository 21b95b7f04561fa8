# The corpusforge image for Spark on Kubernetes (driver and executor pods): the official Spark
# image, whose entrypoint starts Spark's pods, plus Python 3.11 and corpusforge in
# /opt/corpusforge/.venv, built by the tool behind `make package` (tools/pack_env.py): the wheel
# with its C extension, the runtime dependencies, no pyspark (the image's Spark provides it).
#
#   docker build -t REGISTRY/corpusforge:0.1.0 .
#   docker build --build-arg PACK_OPTIONS="--without torch,torchvision,open-clip-torch,tensorboard,matplotlib" \
#       -t REGISTRY/corpusforge-download:0.1.0 .        # executors that never score or train
#
# Use it with --conf spark.kubernetes.container.image=REGISTRY/corpusforge:0.1.0 and
# --conf spark.pyspark.python=/opt/corpusforge/.venv/bin/python (docs/scaling.md). SPARK_IMAGE's
# Spark must be the version of the pyspark that submits (corpusforge takes pyspark 4.x).
ARG SPARK_IMAGE=apache/spark:4.1.0-scala2.13-java17-ubuntu

FROM ${SPARK_IMAGE} AS build
USER root
# The Spark images are Ubuntu 22.04, whose python3 is 3.10: 3.11 is its python3.11 package.
# gcc and the headers build the C extension (pipeline/image/_phash.c).
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev gcc libc6-dev; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY schemas schemas
COPY pipeline pipeline
COPY tools tools
ARG PACK_OPTIONS=""
# The environment is built where it will live: its scripts name their interpreter by full path.
RUN set -eux; \
    python3.11 -m venv /opt/tools; \
    /opt/tools/bin/pip install --no-cache-dir --upgrade pip setuptools packaging; \
    PIP_NO_CACHE_DIR=1 /opt/tools/bin/python -m tools.pack_env --out-dir /opt/corpusforge --name .venv \
        --python /usr/bin/python3.11 --no-archive ${PACK_OPTIONS}

FROM ${SPARK_IMAGE}
USER root
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3.11; \
    rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/corpusforge/.venv /opt/corpusforge/.venv
# The entry points, for cluster mode: local:///opt/corpusforge/jobs/download.py
COPY jobs /opt/corpusforge/jobs
ENV PYSPARK_PYTHON=/opt/corpusforge/.venv/bin/python
USER spark
