"""The jobs' Spark handle: the context at once, the SQL session only when asked for."""

from __future__ import annotations

from pipeline.spark import SparkHandle, get_spark


def test_rdd_work_needs_no_sql_session(spark: object) -> None:
    handle = get_spark("corpusforge-test-handle")  # the running context of the test session
    assert handle.sparkContext is spark.sparkContext  # type: ignore[attr-defined]
    assert handle.sparkContext.parallelize(range(4), 2).map(lambda x: x * 2).collect() == [0, 2, 4, 6]
    assert handle._session is None


def test_other_attributes_go_to_the_session(spark: object) -> None:
    handle = SparkHandle(spark.sparkContext)  # type: ignore[attr-defined]
    frame = handle.createDataFrame([(1, "a")], ["x", "y"])
    assert [tuple(r) for r in frame.collect()] == [(1, "a")]
    assert handle.session is spark  # the builder reuses the running session
    assert handle.version == spark.version  # type: ignore[attr-defined]
