"""Analyses of the tables: how issues and pull requests are created, closed, labelled and noted."""
