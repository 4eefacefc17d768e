"""Writes the ClickHouse fixtures from source.parquet (with chdb installed; README.md)."""

from pathlib import Path

import chdb

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "source.parquet"
VARIANTS = {
    "default": "",
    "lz4-v1-row-groups": "output_format_parquet_compression_method='lz4', "
    "output_format_parquet_version='1.0', output_format_parquet_row_group_size=1000",
    "arrow-encoder-snappy": "output_format_parquet_use_custom_encoder=0, "
    "output_format_parquet_compression_method='snappy'",
    "gzip-tiny-pages": "output_format_parquet_compression_method='gzip', "
    "output_format_parquet_data_page_size=64",
    "brotli-page-index": "output_format_parquet_compression_method='brotli', "
    "output_format_parquet_write_page_index=1",
    "dictionary-limit": "output_format_parquet_max_dictionary_size=64",
    "no-dictionary": "output_format_parquet_max_dictionary_size=0, "
    "output_format_parquet_compression_method='zstd'",
    "text-as-binary": "output_format_parquet_string_as_string=0",
}

for name, settings in VARIANTS.items():
    out = HERE / f"clickhouse-{name}.parquet"
    out.unlink(missing_ok=True)
    query = f"INSERT INTO FUNCTION file('{out}', Parquet) SELECT * FROM file('{SOURCE}', Parquet)"
    if settings:
        query += " SETTINGS " + settings
    chdb.query(query)
    print(out.name, out.stat().st_size)
