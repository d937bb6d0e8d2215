"""Running data contracts: compile a contract's rules for Soda Core, Great Expectations or a Python
callable, run them on an Iceberg snapshot (through DuckDB or pandas) or a database table in place,
and report one result. Nothing here imports airflow; the engines are imported only when used.
"""
