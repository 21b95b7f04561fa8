"""Helpers for orchestrators (Airflow) that run the jobs; pure Python, no orchestrator imports."""
