"""The IO manager for tables: each asset's DataFrame is ``data/tables/<asset name>.parquet``."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from k8s_analysis.atomic import write_parquet
from k8s_analysis.paths import DataLayout, resolve_data_dir


class TableIOManager(dg.ConfigurableIOManager):
    """Write tables atomically as Parquet and record their path and row count."""

    root: str | None = None

    def _path(self, context: dg.OutputContext | dg.InputContext):
        return DataLayout(resolve_data_dir(self.root)).table_path(context.asset_key.path[-1])

    def handle_output(self, context: dg.OutputContext, frame: pd.DataFrame) -> None:
        path = self._path(context)
        write_parquet(frame, path)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path)), "dagster/row_count": len(frame)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        path = self._path(context)
        if not path.exists():
            raise FileNotFoundError(f"table {path} does not exist yet; materialize {context.asset_key.to_user_string()} first")
        return pd.read_parquet(path)
