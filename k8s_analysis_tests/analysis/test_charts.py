"""Every analysis runs and every chart renders on the real shared objects."""

import json
import tarfile

import matplotlib.image
import pytest

from k8s_analysis.analysis.charts import draw, save, subtitle
from k8s_analysis.analysis.registry import ANALYSES, SCOPE_TITLES, AnalysisInput, date_range
from k8s_analysis.analysis.series import NameFilter
from k8s_analysis.tables.items import build_item_tables
from k8s_analysis_tests.shared_data import shared_path


@pytest.fixture(scope="module")
def real_data():
    with tarfile.open(shared_path("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")) as tar:
        items = json.load(tar.extractfile("api.json"))
    items += json.loads(shared_path("data", "pygithub-replaydata", "issues_from_replaydata.json").read_text())
    tables = build_item_tables(items)
    return AnalysisInput(tables.issues, tables.pull_requests, tables.labels)


CASES = [(name, scope) for name, analysis in ANALYSES.items() for scope in analysis.scopes]


@pytest.mark.parametrize(("name", "scope"), CASES)
def test_chart_renders(real_data, tmp_path, name, scope):
    analysis = ANALYSES[name]
    series = analysis.compute(real_data, scope, NameFilter(exclude="^(lgtm|approved)$|^size/"), 25)
    figure = draw(analysis.chart, series, analysis.title, subtitle(SCOPE_TITLES[scope], date_range(real_data, scope)))
    png, svg = save(figure, tmp_path / f"{name}-{scope}")
    height, width, _ = matplotlib.image.imread(png).shape
    assert width >= 900
    assert height >= 250
    assert svg.read_text().lstrip().startswith("<?xml")


def test_only_issue_groups_empty(real_data):
    """The 64 real issues carry only labels without a slash, so they have no label groups."""
    empty = {(name, scope) for name, scope in CASES
             if ANALYSES[name].compute(real_data, scope, NameFilter(), 25).empty}
    assert empty == {("labels_by_group", "issues")}


def test_real_data_has_issues_and_prs(real_data):
    assert len(real_data.issues) == 64
    assert len(real_data.pull_requests) == 744 + 324


def test_subtitle_keeps_dollar_signs(real_data):
    from k8s_analysis.analysis.charts import subtitle as make_subtitle

    text = make_subtitle("pull requests", date_range(real_data, "pull_requests"), NameFilter(exclude=r"a$|b$"))
    figure = draw("ranking", ANALYSES["users_by_closed"].compute(real_data, "all", NameFilter(), 5), "t", text)
    figure.canvas.draw()
    assert figure.axes[0].get_title(loc="left").endswith("without names matching a$|b$")
    assert make_subtitle("issues", date_range(real_data, "issues"), NameFilter()).endswith("; no name filter")
