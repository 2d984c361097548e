"""The labelling bot: a GitHub webhook and Prow external-plugin server that predicts kind/bug on PRs.

``signature`` checks a delivery's HMAC before anything reads it, and ``deliveries`` remembers
which deliveries were handled, across restarts.
"""
