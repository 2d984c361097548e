"""The bot's comment text: the verdict, the label sentence and the words listed."""

from k8s_analysis.bot.comment import ADDED, ADDED_EARLIER, MARKER, Prediction, render


def test_render_skips_zero_effects():
    explanation = {"up": [{"ngram": "crash", "log_odds": 0.97}, {"ngram": "--foo", "log_odds": 0.001}],
                   "down": [{"ngram": "flag", "log_odds": -0.004}]}

    body = render(Prediction(0.91, 0.5, "v1", explanation=explanation), ADDED)

    assert "`crash` (+0.97)" in body
    assert "--foo" not in body
    assert "flag" not in body
    assert "against" not in body


def test_render_earlier_label_unchanged():
    prediction = Prediction(0.91, 0.5, "v1")

    assert render(prediction, ADDED_EARLIER) == render(prediction, ADDED)
    assert render(prediction, ADDED).startswith(MARKER)
    assert "to **91%** (the label's threshold is 50%)" in render(prediction, ADDED)
