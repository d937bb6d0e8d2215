"""Data-subject requests (GDPR Art. 15, 17, 18, 20; SOC2 CC6.3) on Iceberg tables described by contracts:
discovery, export, erasure that is physical (purge) and verified, restriction, signed certificates and
a hash-chained audit trail. Nothing here imports airflow.
"""
