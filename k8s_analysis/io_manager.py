"""The IO manager for tables: each asset's DataFrame is ``tables/<asset name>.parquet``.

The tables folder is ``DATA_DIR/tables`` or, with object storage configured, ``<storage>/tables``
(see ``DataLayout.tables_dir``). Both are written through ``storage.write_parquet``, so readers
never see a partial table.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
from upath import UPath

from k8s_analysis.paths import DataLayout, resolve_data_dir
from k8s_analysis.storage import read_parquet, write_parquet


class ParquetTableIOManager(dg.UPathIOManager):
    """Write tables as Parquet under one folder and record their path and row count."""

    extension = ".parquet"

    def get_asset_relative_path(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        # The file is named after the asset's last key part, as the tables always were.
        return UPath(context.asset_key.path[-1])

    def make_directory(self, path: UPath) -> None:
        # Object stores have no folders, and the local writer creates its own.
        return None

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        write_parquet(obj, path)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        try:
            return read_parquet(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"table {path} does not exist yet; materialize "
                                    f"{context.asset_key.to_user_string()} first") from None

    def get_metadata(self, context: dg.OutputContext, obj: pd.DataFrame) -> dict[str, dg.MetadataValue]:
        return {"dagster/row_count": dg.MetadataValue.int(len(obj))}


class TableIOManager(dg.ConfigurableIOManagerFactory):
    """Tables in the data directory, or in object storage when K8S_ANALYSIS_STORAGE_URL is set."""

    root: str | None = None
    """The data directory; unset means $K8S_ANALYSIS_DATA_DIR, else ./data (resolved at run time)."""

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetTableIOManager:
        return ParquetTableIOManager(UPath(DataLayout(resolve_data_dir(self.root)).tables_dir))
