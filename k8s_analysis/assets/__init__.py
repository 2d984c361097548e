"""Software-defined assets, one module per stage of the pipeline."""

import dagster as dg

from k8s_analysis.assets import analysis, model, raw, tables

MODULES = [raw, tables, model, analysis]

all_assets = dg.load_assets_from_modules(MODULES)
all_asset_checks = dg.load_asset_checks_from_modules(MODULES)
