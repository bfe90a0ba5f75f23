"""Benchmarks for aisoule on PostgreSQL (``make bench`` / ``python -m bench``).

Seeds a dedicated database with a large workspace, serves the real app with uvicorn, drives it with
wrk, replays the same SQL straight against PostgreSQL with asyncpg, and writes docs/benchmarks.md.
"""
